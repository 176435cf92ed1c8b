"""Places where a Lightning Fabric script gave different results under fabric-core, found by
running the same scripts under both (Lightning 2.6, CPU, 1 and 2 processes), now the same.

The expected values are computed here by hand or with plain torch; Lightning is not
installed in CI.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fabric_core import Fabric
from fabric_core.utilities import rank_zero_only
from fabric_core.utilities.apply_func import convert_to_tensors
from fabric_core.utilities.rank_zero import LightningDeprecationWarning

CPU = torch.device("cpu")

# -- numbers and NumPy values in collectives ------------------------------------------------------


def test_numpy_values_become_tensors_with_their_dtype() -> None:
    # They used to pass through untouched: all_reduce returned each rank's own array, unreduced.
    converted = convert_to_tensors({"a": np.array([1.0, 2.0]), "b": [np.int32(3), np.array([[1, 2]])[:, ::-1]]}, CPU)
    assert torch.equal(converted["a"], torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert torch.equal(converted["b"][0], torch.tensor(3, dtype=torch.int32))
    assert torch.equal(converted["b"][1], torch.tensor([[2, 1]]))  # negative strides are copied


def test_python_bools_become_integers_so_that_a_sum_counts() -> None:
    assert convert_to_tensors(True, CPU).dtype == torch.int64
    assert convert_to_tensors([False, 3, 2.5], CPU) == [torch.tensor(0), torch.tensor(3), torch.tensor(2.5)]
    assert convert_to_tensors("text", CPU) == "text"


def test_numpy_all_reduce_in_one_process_returns_a_tensor() -> None:
    fabric = Fabric(accelerator="cpu", devices=1)
    result = fabric.all_reduce({"x": np.array([1.5, 2.5])}, reduce_op="sum")
    assert torch.equal(result["x"], torch.tensor([1.5, 2.5], dtype=torch.float64))


# -- ranks before launch() --------------------------------------------------------------------------


def test_ranks_hold_from_construction_as_in_lightning(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before launch() the rank-0 process used to report world_size 1, and a started rank 1
    # reported global_rank 0 and is_global_zero True (so `if fabric.is_global_zero:` ran twice).
    fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp")
    assert (fabric.world_size, fabric.global_rank, fabric.is_global_zero) == (2, 0, True)
    monkeypatch.setenv("LOCAL_RANK", "1")  # what the launcher sets for the second process
    fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp")
    assert (fabric.world_size, fabric.global_rank, fabric.local_rank, fabric.is_global_zero) == (2, 1, 1, False)
    assert rank_zero_only.rank == 1  # type: ignore[attr-defined]


# -- Lightning's older API --------------------------------------------------------------------------


def test_sharded_model_is_deprecated_and_runs_init_module() -> None:
    fabric = Fabric(accelerator="cpu", precision="bf16-true")
    deprecated = r"fabric.sharded_model\(\) is deprecated .* fabric.init_module"
    with pytest.warns(LightningDeprecationWarning, match=deprecated), fabric.sharded_model():
        model = nn.Linear(2, 2)
    assert model.weight.dtype == torch.bfloat16
