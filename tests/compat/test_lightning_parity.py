"""Places where a Lightning Fabric script gave different results under fabric-core, found by
running the same scripts under both (Lightning 2.6, CPU, 1 and 2 processes), now the same.

The expected values are computed here by hand or with plain torch; Lightning is not
installed in CI.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from fabric_core import Fabric
from fabric_core.utilities import rank_zero_only
from fabric_core.utilities.apply_func import convert_to_tensors
from fabric_core.utilities.rank_zero import LightningDeprecationWarning
from fabric_core.utilities.seed import worker_init_function
from tests.helpers.processes import run_script

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


# -- custom batch objects ----------------------------------------------------------------------------


class _Batch:
    """A batch class of the kind tokenizers and graph libraries return: it moves itself with ``to``."""

    def __init__(self, returns_itself: bool = True) -> None:
        self.moved_to: list[torch.device] = []
        self.returns_itself = returns_itself

    def to(self, device: torch.device) -> _Batch | None:
        self.moved_to.append(device)
        return self if self.returns_itself else None


def test_objects_with_a_to_method_are_moved_alone_and_inside_collections() -> None:
    # They were left where they were: on a GPU, the batch stayed on the CPU.
    fabric = Fabric(accelerator="cpu")
    alone, inside, in_place = _Batch(), _Batch(), _Batch(returns_itself=False)
    assert fabric.to_device(alone) is alone
    moved = fabric.to_device({"batch": [inside], "x": torch.ones(1), "name": "a"})
    assert moved["batch"][0] is inside and moved["name"] == "a"
    assert fabric.to_device(in_place) is in_place  # its to() returned None: kept
    assert alone.moved_to == inside.moved_to == in_place.moved_to == [CPU]


def test_a_set_up_dataloader_moves_custom_batches() -> None:
    fabric = Fabric(accelerator="cpu")
    batches = [_Batch(), _Batch()]
    loader = fabric.setup_dataloaders(DataLoader(batches, batch_size=None))
    assert [batch.moved_to for batch in loader] == [[CPU], [CPU]]


# -- DataLoader worker seeds -----------------------------------------------------------------------


def test_worker_seeds_are_derived_as_in_lightning() -> None:
    # Worker k of rank r starts with torch seed base + k; from it, torch and Python get seeds of a
    # 64-bit LCG (multiplier 6364136223846793005, increment 1) started at base << 32 | k << 16 | r,
    # NumPy a SeedSequence([base, k, r]). fabric-core used other seeds: other augmentations.
    base, worker, rank = 123456789, 3, 2
    state, lcg = (base << 32) | (worker << 16) | rank, []
    for _ in range(3):
        state = (state * 6364136223846793005 + 1) % 2**64
        lcg.append(state)
    torch.manual_seed(base + worker)
    worker_init_function(worker, rank=rank)
    drawn = (torch.rand(3), random.random(), np.random.rand(2))
    torch.manual_seed(lcg[0])
    random.seed((lcg[1] << 32) | lcg[2])
    np.random.seed(np.random.SeedSequence([base, worker, rank]).generate_state(4))
    assert torch.equal(drawn[0], torch.rand(3))
    assert drawn[1] == random.random()
    assert np.array_equal(drawn[2], np.random.rand(2))
    # What Lightning Fabric 2.6 draws for worker 0 of rank 0 with base seed 5 (measured).
    torch.manual_seed(5)
    worker_init_function(0, rank=0)
    assert (torch.rand(1).item(), random.random(), float(np.random.rand())) == (
        0.7576315999031067,
        0.9947374853837693,
        0.14122598313019952,
    )


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


def test_dataloaders_are_set_up_after_launch_as_in_lightning() -> None:
    # They were set up before launch() too: under ddp_spawn a loader made in the main process
    # carried rank 0's share of the data into every process.
    fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp_spawn")
    with pytest.raises(RuntimeError, match=r"runs 2 processes, but fabric.launch\(\) was not called"):
        fabric.setup_dataloaders(DataLoader(range(4)))


# -- Lightning's older API --------------------------------------------------------------------------


def test_sharded_model_is_deprecated_and_runs_init_module() -> None:
    fabric = Fabric(accelerator="cpu", precision="bf16-true")
    deprecated = r"fabric.sharded_model\(\) is deprecated .* fabric.init_module"
    with pytest.warns(LightningDeprecationWarning, match=deprecated), fabric.sharded_model():
        model = nn.Linear(2, 2)
    assert model.weight.dtype == torch.bfloat16


class _Doubler(Fabric):
    def run(self, x: int, y: int = 0) -> int:
        model = self.setup(nn.Linear(1, 1))  # allowed: run() is launched
        assert model.device == CPU
        return 2 * x + y


class _DoublerPlusOne(_Doubler):
    def run(self, x: int, y: int = 0) -> int:
        return super().run(x, y) + 1


def test_a_subclass_run_method_is_launched_when_called() -> None:
    assert _Doubler(accelerator="cpu", devices=1).run(3, y=1) == 7
    assert _DoublerPlusOne(accelerator="cpu", devices=1).run(3) == 7  # super().run() runs directly


def test_run_without_a_subclass_says_what_it_is_for() -> None:
    with pytest.raises(NotImplementedError, match=r"run\(\) method of a Fabric subclass .* fabric.launch"):
        Fabric(accelerator="cpu").run()


# -- the same, across two processes ----------------------------------------------------------------

TWO_PROCESSES = """
import numpy as np
import torch
from fabric_core import Fabric

class Trainer(Fabric):
    def run(self, scale):
        rank = self.global_rank
        numbers = self.all_reduce(np.array([1.0, 2.0]) * (rank + 1) * scale, reduce_op="sum")
        count = self.all_reduce(True, reduce_op="sum")
        first = self.all_reduce(rank == 0, reduce_op="sum")
        print(f"RANK {rank}: {numbers.tolist()} {numbers.dtype} {count.item()} {first.item()}", flush=True)

fabric = Trainer(accelerator="cpu", devices=2, strategy="ddp")
print(f"BEFORE LAUNCH {fabric.global_rank}/{fabric.world_size} zero={fabric.is_global_zero}", flush=True)
fabric.run(10)
"""


@pytest.mark.timeout(120)
def test_two_processes_see_their_ranks_before_launch_and_reduce_numpy_and_bools(tmp_path: Path) -> None:
    run = run_script(tmp_path, TWO_PROCESSES, timeout=120)
    assert run.returncode == 0, run.output
    assert "BEFORE LAUNCH 0/2 zero=True" in run.output, run.output
    assert "BEFORE LAUNCH 1/2 zero=False" in run.output, run.output
    # [1, 2] * 10 + [2, 4] * 10, in float64; True on both ranks counts 2; rank == 0 on one rank counts 1
    for rank in (0, 1):
        assert f"RANK {rank}: [30.0, 60.0] torch.float64 2 1" in run.output, run.output
