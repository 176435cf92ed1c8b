"""The conformance kit, run against the core's own components (as add-ons run it against theirs)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from fabric_core import Fabric
from fabric_core.loggers import CSVLogger, Logger
from fabric_core.precision import DoublePrecision, HalfPrecision, MixedPrecision, Precision
from fabric_core.testing import LoggerConformance, PrecisionConformance, StrategyConformance, launcher_command
from tests.helpers.processes import run_script


class TestCSVLoggerConforms(LoggerConformance):
    def make_logger(self, tmp_path: Path) -> Logger:
        return CSVLogger(tmp_path, name="conformance", flush_logs_every_n_steps=1000)

    def read_metrics(self, logger: Logger) -> list[tuple[int, Mapping[str, float]]]:
        assert isinstance(logger, CSVLogger)
        with open(logger.metrics_file_path, newline="") as file:
            rows = list(csv.DictReader(file))
        return [
            (int(row["step"]), {key: float(value) for key, value in row.items() if key != "step" and value})
            for row in rows
        ]


class TestBF16MixedConforms(PrecisionConformance):
    def make_precision(self) -> Precision:
        return MixedPrecision("bf16-mixed")


class TestFP16MixedConforms(PrecisionConformance):
    def make_precision(self) -> Precision:
        return MixedPrecision("16-mixed")


class TestBF16TrueConforms(PrecisionConformance):
    def make_precision(self) -> Precision:
        return HalfPrecision("bf16-true")


class TestDoubleConforms(PrecisionConformance):
    def make_precision(self) -> Precision:
        return DoublePrecision()


class TestSingleDeviceConforms(StrategyConformance):
    def make_fabric(self) -> Fabric:
        return Fabric(accelerator="cpu", strategy="single_device")


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_multi_process_strategies_conform(conformance_run: Callable[..., str], strategy: str) -> None:
    output = conformance_run(strategy, 2)
    assert "CONFORMANCE OK rank 1" in output


def test_a_broken_strategy_fails_the_kit(conformance_run: Callable[..., str]) -> None:
    with pytest.raises(AssertionError, match="strategy='no_such_strategy' on 2 processes failed"):
        conformance_run("no_such_strategy", 2, timeout=60)


@pytest.mark.timeout(240)
def test_all_gather_with_one_process_keeps_the_input_shape(tmp_path: Path) -> None:
    # A process group of one (DDP, FSDP with devices=1) behaves as the single-device strategy:
    # the input back, without the new first dimension (docs/guide/distributed.md, Collectives).
    script = """
        import torch
        from fabric_core import Fabric

        for strategy in ("single_device", "ddp", "fsdp"):
            fabric = Fabric(accelerator="cpu", devices=1, strategy=strategy)
            fabric.launch()
            shapes = [tuple(fabric.all_gather(data).shape) for data in (torch.arange(3), torch.ones(2, 4), 5)]
            tensor = torch.arange(3)
            print(strategy, shapes, fabric.all_gather(tensor) is tensor)
    """
    output = run_script(tmp_path, script).check()
    for strategy in ("single_device", "ddp", "fsdp"):
        assert f"{strategy} [(3,), (2, 4), ()] True" in output, output


@pytest.mark.timeout(300)
@pytest.mark.parametrize("launcher", ["torchrun", "fabric"])
def test_conformance_run_started_by_an_external_launcher(conformance_run: Callable[..., str], launcher: str) -> None:
    output = conformance_run("ddp", 2, launcher=launcher)
    assert "CONFORMANCE OK rank 0" in output and "CONFORMANCE OK rank 1" in output


def test_an_unknown_launcher_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"launcher='mpirun' is not one .* use one of torchrun, fabric, or pass"):
        launcher_command("mpirun", 2)
    assert launcher_command(["srun", "--ntasks=2"], 2) == ["srun", "--ntasks=2"]
