"""Training on the XLA CPU device: the seed example against eager CPU, checkpoints, precisions, strategies."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from fabric_core import Fabric
from fabric_core.loggers import CSVLogger
from torch import nn

from fabric_xla.checkpoint_io import XLACheckpointIO
from fabric_xla.precision import XLAPrecision
from fabric_xla.strategies import SingleDeviceXLAStrategy, XLAFSDPStrategy, XLAStrategy


def _example(root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_mlp", root / "examples" / "train_mlp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def csv_logger(*args: Any, **kwargs: Any) -> CSVLogger:
        # Every row on disk as it is logged: the run's Fabric tears down (and flushes) only at exit.
        return CSVLogger(*args, **{**kwargs, "flush_logs_every_n_steps": 1})

    module.CSVLogger = csv_logger  # type: ignore[attr-defined]
    return module


def _losses(folder: Path) -> list[float]:
    (metrics,) = folder.glob("logs/spirals/version_*/metrics.csv")
    with open(metrics, newline="") as file:
        return [float(row["train/loss"]) for row in csv.DictReader(file) if row["train/loss"]]


@pytest.mark.timeout(600)
def test_seed_example_on_the_tpu_accelerator_matches_eager_cpu(root: Path, tmp_path: Path) -> None:
    example = _example(root)
    arguments = ["--epochs", "2", "--samples", "600", "--batch-size", "64"]
    xla_accuracy = example.main([*arguments, "--accelerator", "tpu", "--root", str(tmp_path / "xla")])
    cpu_accuracy = example.main([*arguments, "--accelerator", "cpu", "--root", str(tmp_path / "cpu")])

    xla, cpu = _losses(tmp_path / "xla"), _losses(tmp_path / "cpu")
    assert len(xla) == len(cpu) == 20  # 2 epochs of 10 batches
    # Same seed, same initial weights, same batches: the XLA run follows eager CPU within fp32 rounding.
    torch.testing.assert_close(torch.tensor(xla), torch.tensor(cpu), rtol=1e-4, atol=1e-5)
    assert xla[-1] < xla[0]
    assert xla_accuracy == pytest.approx(cpu_accuracy, abs=1e-3)
    assert (tmp_path / "xla" / "checkpoints" / "last.pt").is_file()


def _data(steps: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(3)
    return [(torch.randn(16, 4, generator=generator), torch.randn(16, 2, generator=generator)) for _ in range(steps)]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 2))


def _train(fabric: Fabric, model: nn.Module, optimizer: torch.optim.Optimizer, batches: list) -> list[float]:
    losses = []
    for inputs, targets in batches:
        inputs, targets = fabric.to_device((inputs, targets))
        loss = nn.functional.mse_loss(model(inputs), targets)
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.mark.timeout(300)
def test_save_and_load_continue_training_identically(tmp_path: Path) -> None:
    batches = _data(8)
    fabric = Fabric(accelerator="tpu", devices=1)
    assert isinstance(fabric.strategy, SingleDeviceXLAStrategy)  # strategy="auto" on one XLA device
    assert isinstance(fabric.strategy.checkpoint_io, XLACheckpointIO)
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model, optimizer = fabric.setup(model, optimizer)  # the optimizer keeps the moved parameters
    assert next(model.parameters()).device.type == "xla"
    _train(fabric, model, optimizer, batches[:4])
    fabric.save(tmp_path / "ckpt.pt", {"model": model, "optimizer": optimizer, "step": 4})
    uninterrupted = _train(fabric, model, optimizer, batches[4:])

    # A checkpoint written on the XLA device holds CPU tensors: it loads without torch_xla.
    raw = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert {tensor.device.type for tensor in raw["model"].values()} == {"cpu"}

    resumed_fabric = Fabric(accelerator="tpu", devices=1)
    fresh = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 2))
    model2, optimizer2 = resumed_fabric.setup(fresh, torch.optim.Adam(fresh.parameters(), lr=1e-2))
    state = {"model": model2, "optimizer": optimizer2, "step": 0}
    remainder = resumed_fabric.load(tmp_path / "ckpt.pt", state)
    assert remainder == {} and state["step"] == 4
    resumed = _train(resumed_fabric, model2, optimizer2, batches[4:])
    assert resumed == uninterrupted  # bit for bit: same device, same state, same data


@pytest.mark.timeout(300)
def test_bf16_true_trains_in_bfloat16_with_float32_outputs() -> None:
    fabric = Fabric(accelerator="tpu", devices=1, precision="bf16-true")
    assert isinstance(fabric.strategy.precision, XLAPrecision)
    assert fabric.strategy.precision.precision == "bf16-true"
    model = fabric.setup_module(_model())
    optimizer = fabric.setup_optimizers(torch.optim.SGD(model.parameters(), lr=0.1))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model(fabric.to_device(torch.randn(2, 4))).dtype == torch.float32  # default dtype, as in Lightning
    with fabric.init_tensor():
        assert torch.empty(1).dtype == torch.bfloat16
    losses = _train(fabric, model, optimizer, _data(6) * 3)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) < sum(losses[:3])


def test_mixed_precision_is_refused_naming_the_xla_precisions() -> None:
    with pytest.raises(ValueError, match=r"precision='bf16-mixed' .* not supported on XLA devices.*'bf16-true'"):
        Fabric(accelerator="tpu", devices=1, precision="bf16-mixed")
    with pytest.raises(ValueError, match=r"precision='64-true' is not supported on XLA devices"):
        XLAPrecision("64-true")


@pytest.mark.timeout(300)
def test_xla_strategy_on_one_device_runs_through_xlas_launcher() -> None:
    fabric = Fabric(accelerator="tpu", devices=1, strategy="xla")
    assert isinstance(fabric.strategy, XLAStrategy)

    def train(fabric: Fabric) -> tuple[int, int, str, list[float], float, list[int]]:
        model = _model()
        model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.1))
        losses = _train(fabric, model, optimizer, _data(1) * 4)
        fabric.barrier()
        total = fabric.all_reduce(torch.tensor(3.0), reduce_op="sum")
        gathered = fabric.all_gather(torch.tensor([1, 2]))
        value = fabric.broadcast({"answer": 42})
        assert value == {"answer": 42}
        return fabric.global_rank, fabric.world_size, fabric.device.type, losses, float(total), gathered.tolist()

    rank, world_size, device, losses, total, gathered = fabric.launch(train)
    assert (rank, world_size, device) == (0, 1, "xla")
    assert losses[-1] < losses[0]
    assert total == 3.0 and gathered == [1, 2]


@pytest.mark.timeout(300)
def test_dataloaders_go_through_xlas_parallel_loader_and_resume_mid_epoch(tmp_path: Path) -> None:
    from torch_xla.distributed.parallel_loader import MpDeviceLoader

    fabric = Fabric(accelerator="tpu", devices=1)
    assert isinstance(fabric.strategy.batches_to_device([], fabric.device), MpDeviceLoader)
    dataset = torch.utils.data.TensorDataset(torch.arange(40.0).reshape(20, 2), torch.arange(20))

    def loader() -> Any:
        shuffled = torch.utils.data.DataLoader(
            dataset, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(1)
        )
        return fabric.setup_dataloaders(shuffled)

    first = loader()
    batches = iter(first)
    seen = [next(batches) for _ in range(2)]
    assert {tensor.device.type for batch in seen for tensor in batch} == {"xla"}
    fabric.save(tmp_path / "position.pt", {"data": first})
    rest = [labels.cpu().tolist() for _, labels in batches]
    assert len(rest) == 3
    everything = [label for _, labels in seen for label in labels.cpu().tolist()] + [x for part in rest for x in part]
    assert sorted(everything) == list(range(20))  # one epoch: every sample once

    second = loader()
    fabric.load(tmp_path / "position.pt", {"data": second})
    assert [labels.cpu().tolist() for _, labels in second] == rest  # the epoch continues where it was saved


@pytest.mark.timeout(300)
def test_xla_fsdp_trains_and_its_sharded_checkpoint_round_trips(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="tpu", devices=1, strategy="xla_fsdp")
    assert isinstance(fabric.strategy, XLAFSDPStrategy)
    batches = _data(6)

    def train(fabric: Fabric) -> list[float]:
        plain = _model()
        with pytest.raises(RuntimeError, match=r"xla_fsdp' cannot set up a model and its optimizer together"):
            fabric.setup(plain, torch.optim.SGD(plain.parameters(), lr=0.1))
        model = fabric.setup_module(_model())
        with pytest.raises(ValueError, match=r"holds none of the sharded parameters"):
            fabric.setup_optimizers(torch.optim.SGD(_model().parameters(), lr=0.1))
        optimizer = fabric.setup_optimizers(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
        first = _train(fabric, model, optimizer, batches[:1] * 3)
        assert first[-1] < first[0]
        fabric.save(tmp_path / "sharded", {"model": model, "optimizer": optimizer, "note": "x"})
        return _train(fabric, model, optimizer, batches[3:])

    uninterrupted = fabric.launch(train)
    assert [p.name for p in (tmp_path / "sharded").iterdir()] == ["checkpoint_rank-00000000-of-00000001.pth"]

    def resume(fabric: Fabric) -> list[float]:
        model = fabric.setup_module(nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 2)))
        optimizer = fabric.setup_optimizers(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
        remainder = fabric.load(tmp_path / "sharded", {"model": model, "optimizer": optimizer})
        assert remainder == {"note": "x"}
        return _train(fabric, model, optimizer, batches[3:])

    assert Fabric(accelerator="tpu", devices=1, strategy="xla_fsdp").launch(resume) == uninterrupted
