"""``fabric_core.utilities`` and its submodules behave as Lightning Fabric documents them."""

from __future__ import annotations

import logging
import warnings
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from fabric_core import Fabric
from fabric_core.strategies import SingleDeviceStrategy
from fabric_core.utilities import (
    AttributeDict,
    LightningEnum,
    Throughput,
    ThroughputMonitor,
    disable_possible_user_warnings,
    is_shared_filesystem,
    measure_flops,
    move_data_to_device,
    rank_zero_deprecation,
    rank_zero_info,
    rank_zero_only,
    rank_zero_warn,
    suggested_max_num_workers,
)
from fabric_core.utilities.apply_func import TransferableDataType, convert_tensors_to_scalars
from fabric_core.utilities.data import has_len, sized_len
from fabric_core.utilities.distributed import DistributedSamplerWrapper
from fabric_core.utilities.init import _EmptyInit, _has_meta_device_parameters_or_buffers, _materialize_meta_tensors
from fabric_core.utilities.load import _lazy_load
from fabric_core.utilities.rank_zero import LightningDeprecationWarning, rank_prefixed_message
from fabric_core.utilities.types import Optimizable, ReduceOp, Steppable
from fabric_core.utilities.warnings import PossibleUserWarning


def test_attribute_dict() -> None:
    hparams = AttributeDict(lr=0.1)
    hparams.batch_size = 32
    assert hparams["batch_size"] == 32 and hparams.lr == 0.1
    assert getattr(hparams, "missing", "default") == "default"
    assert repr(hparams) == '"batch_size": 32\n"lr":         0.1'
    # Values as str() shows them, as in Lightning (a string unquoted).
    assert repr(AttributeDict(name="mlp", layers=[1, 2])) == '"layers": [1, 2]\n"name":   mlp'


def test_suggested_max_num_workers_shares_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    import fabric_core.utilities.data as data

    monkeypatch.setattr(data, "_available_cores", lambda: 16)
    assert suggested_max_num_workers(1) == 15
    assert suggested_max_num_workers(4) == 3
    assert suggested_max_num_workers(32) == 1
    with pytest.raises(ValueError, match=r"local_world_size=0\): it must be 1 or more"):
        suggested_max_num_workers(0)


def test_lengths() -> None:
    assert sized_len([1, 2]) == 2 and sized_len(iter([1])) is None
    assert has_len([1]) and not has_len(iter([1]))
    with pytest.raises(ValueError, match="has length 0"):
        has_len([])


def test_is_shared_filesystem_with_one_process(tmp_path: Path) -> None:
    assert is_shared_filesystem(SingleDeviceStrategy(), path=tmp_path) is True


def test_distributed_sampler_wrapper_shards_any_sampler() -> None:
    sampler = list(range(10))  # any iterable of indices, e.g. a WeightedRandomSampler
    shards = [list(DistributedSamplerWrapper(sampler, num_replicas=2, rank=rank)) for rank in range(2)]  # type: ignore[arg-type]
    assert sorted(shards[0] + shards[1]) == list(range(10))
    assert len(shards[0]) == len(shards[1]) == 5


def test_lightning_enum_compares_to_strings_in_any_case() -> None:
    class Mode(LightningEnum):
        TRAIN = "train"

    assert Mode.TRAIN == "TRAIN" and Mode.from_str("train") is Mode.TRAIN
    with pytest.raises(ValueError, match="'eval' is not a Mode"):
        Mode.from_str("eval")


def test_possible_user_warnings_can_be_disabled() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        disable_possible_user_warnings()
        warnings.warn("hint", PossibleUserWarning, stacklevel=1)
        warnings.warn("real", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["real"]


def test_rank_zero_helpers_run_on_rank_zero_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.warns(UserWarning, match="careful"):
        rank_zero_warn("careful")
    with pytest.warns(LightningDeprecationWarning, match="old"):
        rank_zero_deprecation("old")
    with caplog.at_level(logging.INFO, logger="fabric_core"):
        rank_zero_info("hello %s", "there")
    assert "hello there" in caplog.text
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rank_zero_warn("not on rank 1")  # would raise if it warned
    assert rank_prefixed_message("hi", 3) == "[rank: 3] hi"


def test_move_data_to_device_and_scalars() -> None:
    batch = {"x": torch.ones(2), "y": [torch.zeros(1)], "name": "a"}
    moved = move_data_to_device(batch, torch.device("cpu"))
    assert moved["name"] == "a" and moved["x"].device.type == "cpu"
    assert convert_tensors_to_scalars({"loss": torch.tensor(0.5)}) == {"loss": 0.5}
    assert isinstance(torch.ones(1), TransferableDataType) and not isinstance("text", TransferableDataType)


def test_measure_flops_of_a_linear_layer() -> None:
    with torch.device("meta"):
        model = torch.nn.Linear(8, 4, bias=False)
        x = torch.randn(2, 8)
    assert measure_flops(model, lambda: model(x)) == 2 * 2 * 8 * 4
    # backward: the weight gradient only (the input needs none), as many FLOPs as forward
    assert measure_flops(model, lambda: model(x), lambda y: y.sum()) == 2 * 2 * 2 * 8 * 4


def test_throughput_rates_over_the_window() -> None:
    throughput = Throughput(available_flops=100.0, world_size=2, window_size=2)
    throughput.update(time=1.0, batches=1, samples=4, flops=10)
    assert throughput.compute() == {"time": 1.0, "batches": 1, "samples": 4}
    throughput.update(time=3.0, batches=3, samples=12, flops=10)
    metrics = throughput.compute()
    assert metrics["device/batches_per_sec"] == 1.0 and metrics["batches_per_sec"] == 2.0
    assert metrics["device/samples_per_sec"] == 4.0 and metrics["samples_per_sec"] == 8.0
    assert metrics["device/flops_per_sec"] == 5.0 and metrics["device/mfu"] == 0.05
    with pytest.raises(ValueError, match=r"time must increase"):
        throughput.update(time=3.0, batches=4, samples=16)


def test_throughput_monitor_logs_through_fabric() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.logged: list[tuple[dict[str, float], int | None]] = []

        def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
            self.logged.append((dict(metrics), step))

        def log_hyperparams(self, params: object) -> None:
            pass

    from fabric_core.loggers import Logger

    class RecordingLogger(Logger):
        def __init__(self) -> None:
            self.recorder = Recorder()

        @property
        def name(self) -> str:
            return "rec"

        @property
        def version(self) -> int:
            return 0

        def log_metrics(self, metrics: object, step: int | None = None) -> None:
            self.recorder.log_metrics(dict(metrics), step)  # type: ignore[call-overload]

        def log_hyperparams(self, params: object, *args: object, **kwargs: object) -> None:
            pass

    logger = RecordingLogger()
    fabric = Fabric(accelerator="cpu", devices=1, loggers=[logger])
    monitor = ThroughputMonitor(fabric, window_size=2)
    monitor.update(time=1.0, batches=1, samples=2)
    monitor.update(time=2.0, batches=2, samples=4)
    metrics = monitor.compute_and_log()
    assert metrics["device/samples_per_sec"] == 2.0
    assert logger.recorder.logged == [(metrics, 0)]


def test_empty_init_and_meta_materialization() -> None:
    with torch.device("meta"):
        model = torch.nn.Linear(2, 2)
    assert _has_meta_device_parameters_or_buffers(model)
    _materialize_meta_tensors(model, torch.device("cpu"))
    assert not _has_meta_device_parameters_or_buffers(model)
    with _EmptyInit():
        skipped = torch.nn.Linear(2, 2)  # parameters allocated, initialisation skipped
    assert skipped.weight.shape == (2, 2)


def test_lazy_load_round_trip(tmp_path: Path) -> None:
    torch.save({"w": torch.arange(4.0)}, tmp_path / "ckpt.pt")
    assert torch.equal(_lazy_load(tmp_path / "ckpt.pt")["w"], torch.arange(4.0))
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        _lazy_load(tmp_path / "missing.pt")


def test_types_are_protocols_of_what_fabric_accepts() -> None:
    optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    assert isinstance(optimizer, Optimizable) and isinstance(optimizer, Steppable)
    assert ReduceOp is torch.distributed.ReduceOp
    assert not isinstance(Namespace(), Steppable)
