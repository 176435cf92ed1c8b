"""Strategies, precisions, cluster environments and checkpoint IO written against Lightning
Fabric's interfaces (its method names and signatures) work as fabric-core plugins.

Each class below is what a Lightning user would write, imports renamed.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import torch

from fabric_core import Fabric
from fabric_core.plugins import CheckpointIO, FSDPPrecision, Precision, TorchCheckpointIO
from fabric_core.plugins.environments import ClusterEnvironment
from fabric_core.strategies import (
    STRATEGY_REGISTRY,
    DataParallelStrategy,
    DDPStrategy,
    FSDPStrategy,
    ModelParallelStrategy,
    ParallelStrategy,
    SingleDeviceStrategy,
    Strategy,
)


class OneProcessParallel(ParallelStrategy):
    """A Lightning-style ParallelStrategy subclass: only ``root_device`` is its own."""

    @property
    def root_device(self) -> torch.device:
        return self.parallel_devices[self.local_rank] if self.parallel_devices else torch.device("cpu")


class FixedEnvironment(ClusterEnvironment):
    """Lightning's ClusterEnvironment interface, ``detect`` a staticmethod as Lightning declares it."""

    @property
    def creates_processes_externally(self) -> bool:
        return False

    @property
    def main_address(self) -> str:
        return "127.0.0.1"

    @property
    def main_port(self) -> int:
        return 29533

    @staticmethod
    def detect() -> bool:
        return False

    def world_size(self) -> int:
        return 1

    def set_world_size(self, size: int) -> None:
        pass

    def global_rank(self) -> int:
        return 0

    def set_global_rank(self, rank: int) -> None:
        pass

    def local_rank(self) -> int:
        return 0

    def node_rank(self) -> int:
        return 0


class RecordingIO(TorchCheckpointIO):
    """Lightning's CheckpointIO signatures: ``storage_options`` and ``weights_only=None``."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        self.calls.append("save")
        super().save_checkpoint(checkpoint, path, storage_options=storage_options)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        self.calls.append(f"load weights_only={weights_only}")
        return super().load_checkpoint(path, weights_only=weights_only)


class ScaledPrecision(Precision):
    """Lightning's Precision interface: ``convert_input`` and ``backward(tensor, model, ...)``."""

    def __init__(self) -> None:
        self.inputs_seen = 0

    def convert_input(self, data: Any) -> Any:
        self.inputs_seen += 1
        return data

    # Lightning names the second parameter ``model``; fabric-core's base says ``module``.
    def backward(  # type: ignore[override]
        self, tensor: torch.Tensor, model: torch.nn.Module | None, *args: Any, **kwargs: Any
    ) -> None:
        (tensor * 2).backward(*args, **kwargs)  # type: ignore[no-untyped-call]


def test_parallel_strategy_is_the_base_of_the_multi_process_strategies() -> None:
    for strategy in (DDPStrategy, FSDPStrategy, ModelParallelStrategy, DataParallelStrategy):
        assert issubclass(strategy, ParallelStrategy), strategy
    assert not issubclass(SingleDeviceStrategy, ParallelStrategy)
    assert issubclass(ParallelStrategy, Strategy)


def test_lightning_style_subclasses_run_a_training_step_and_a_checkpoint(tmp_path: Path) -> None:
    io, precision = RecordingIO(), ScaledPrecision()
    strategy = OneProcessParallel(precision=precision, checkpoint_io=io)
    fabric = Fabric(accelerator="cpu", devices=1, strategy=strategy, plugins=[FixedEnvironment()])
    assert isinstance(fabric.strategy.cluster_environment, FixedEnvironment)
    fabric.launch()
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.ones_(model.weight)
    model, _ = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=1.0))
    fabric.backward(model(torch.ones(1, 2)).sum())
    assert model.weight.grad is not None
    assert torch.equal(model.weight.grad, torch.full((1, 2), 2.0))  # the precision's backward ran
    assert precision.inputs_seen == 1
    assert fabric.strategy.distributed_sampler_kwargs == {"num_replicas": 1, "rank": 0}
    assert fabric.strategy.reduce_boolean_decision(True) is True
    fabric.save(tmp_path / "ckpt.pt", {"model": model})
    fabric.load(tmp_path / "ckpt.pt", {"model": model})
    assert io.calls == ["save", "load weights_only=True"]


def test_precision_has_lightnings_methods_with_their_signatures() -> None:
    expected = {
        "convert_module": ["module"],
        "tensor_init_context": [],
        "module_init_context": [],
        "forward_context": [],
        "convert_input": ["data"],
        "convert_output": ["data"],
        "pre_backward": ["tensor", "module"],
        "backward": ["tensor", "module", "args", "kwargs"],
        "post_backward": ["tensor", "module"],
        "optimizer_step": ["optimizer", "kwargs"],
        "main_params": ["optimizer"],
        "unscale_gradients": ["optimizer"],
        "state_dict": [],
        "load_state_dict": ["state_dict"],
        "teardown": [],
    }
    for method, parameters in expected.items():
        signature = inspect.signature(getattr(Precision, method))
        assert list(signature.parameters)[1:] == parameters, method
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert list(Precision().main_params(optimizer)) == list(model.parameters())
    loss = torch.tensor(1.0)
    assert Precision().pre_backward(loss, model) is loss and Precision().post_backward(loss, model) is loss


def test_fsdp_precision_refuses_what_fsdp_cannot_do() -> None:
    with pytest.raises(ValueError, match=r"FSDPPrecision\(precision='64-true'\) is not supported with FSDP"):
        FSDPPrecision("64-true")
    with pytest.raises(ValueError, match=r"only '16-mixed' scales the loss"):
        FSDPPrecision("bf16-mixed", scaler=torch.amp.GradScaler("cpu"))


def test_fsdp_precision_gives_fsdp_its_mixed_precision_policy() -> None:
    mixed = FSDPPrecision("bf16-mixed").mixed_precision_config
    assert (mixed.param_dtype, mixed.reduce_dtype) == (None, torch.bfloat16)
    true_half = FSDPPrecision("16-true").mixed_precision_config
    assert (true_half.param_dtype, true_half.reduce_dtype) == (torch.float16, torch.float16)
    with FSDPPrecision("bf16-true").module_init_context():
        assert torch.nn.Linear(2, 2).weight.dtype == torch.bfloat16


def test_torch_checkpoint_io_refuses_storage_options(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"storage_options=\{'anon': True\}\): writing local files takes no storage"):
        TorchCheckpointIO().save_checkpoint({"a": 1}, tmp_path / "x.pt", storage_options={"anon": True})
    assert TorchCheckpointIO is CheckpointIO


def test_checkpoint_io_weights_only_none_is_the_safe_default(tmp_path: Path) -> None:
    io = CheckpointIO()
    io.save_checkpoint({"w": torch.ones(2), "obj": Path("x")}, tmp_path / "x.pt")
    with pytest.raises(RuntimeError, match="weights_only=True refuses"):
        io.load_checkpoint(tmp_path / "x.pt", weights_only=None)
    assert io.load_checkpoint(tmp_path / "x.pt", weights_only=False)["obj"] == Path("x")


def test_strategy_registry_lists_and_builds_the_registered_strategies() -> None:
    assert "ddp" in STRATEGY_REGISTRY.available_strategies()
    assert STRATEGY_REGISTRY["ddp_spawn"]["strategy"] is DDPStrategy
    built = STRATEGY_REGISTRY.get("ddp_spawn")
    assert isinstance(built, DDPStrategy) and built.start_method == "spawn"
    assert STRATEGY_REGISTRY.get("no_such_strategy") is None
    with pytest.raises(NotImplementedError, match="fabric_register_strategies hook"):
        STRATEGY_REGISTRY.register("mine", OneProcessParallel)


def test_accelerator_registry_and_find_usable_cuda_devices() -> None:
    from fabric_core.accelerators import ACCELERATOR_REGISTRY, CPUAccelerator, find_usable_cuda_devices

    assert ACCELERATOR_REGISTRY["cpu"]["accelerator"] is CPUAccelerator
    assert find_usable_cuda_devices(0) == []
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"find_usable_cuda_devices\(2\): no CUDA device is visible"):
            find_usable_cuda_devices(2)
