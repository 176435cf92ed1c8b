"""Conformance test classes: subclass one, implement its ``make_*`` method, and pytest runs the checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from fabric_core.fabric import Fabric
from fabric_core.loggers.logger import Logger
from fabric_core.precision.precision import Precision
from fabric_core.testing.checks import check_checkpoint_round_trip, check_collectives, check_training_reduces_loss


class StrategyConformance:
    """For strategies that run in one process (multi-process ones: :func:`run_training_script`).

    Implement :meth:`make_fabric`, returning a Fabric that uses the strategy.
    """

    def make_fabric(self) -> Fabric:
        raise NotImplementedError("Return Fabric(strategy=<your strategy>, ...) from make_fabric().")

    @pytest.fixture
    def fabric(self) -> Fabric:
        fabric = self.make_fabric()
        fabric.launch()
        return fabric

    def test_trains(self, fabric: Fabric) -> None:
        check_training_reduces_loss(fabric)

    def test_checkpoint_round_trip(self, fabric: Fabric, tmp_path: Path) -> None:
        check_checkpoint_round_trip(fabric, tmp_path / "checkpoint")

    def test_collectives(self, fabric: Fabric) -> None:
        check_collectives(fabric)

    def test_state_dict_has_no_wrapper_prefix(self, fabric: Fabric) -> None:
        model = fabric.setup(nn.Linear(2, 2))
        assert sorted(model.state_dict()) == ["bias", "weight"]


class PrecisionConformance:
    """For precision plugins. Implement :meth:`make_precision`."""

    def make_precision(self) -> Precision:
        raise NotImplementedError("Return your Precision instance from make_precision().")

    def test_trains_with_outputs_in_default_dtype(self) -> None:
        check_training_reduces_loss(Fabric(accelerator="cpu", plugins=[self.make_precision()]))

    def test_checkpoint_round_trip(self, tmp_path: Path) -> None:
        check_checkpoint_round_trip(Fabric(accelerator="cpu", plugins=[self.make_precision()]), tmp_path / "c.pt")

    def test_contexts_restore_the_default_dtype(self) -> None:
        precision = self.make_precision()
        precision.setup("cpu")
        for context in (precision.forward_context(), precision.module_init_context(), precision.tensor_init_context()):
            with context:
                pass
            assert torch.get_default_dtype() == torch.float32

    def test_state_dict_round_trip(self) -> None:
        precision = self.make_precision()
        precision.setup("cpu")
        precision.load_state_dict(precision.state_dict())


class LoggerConformance:
    """For metric loggers. Implement :meth:`make_logger` and :meth:`read_metrics`."""

    def make_logger(self, tmp_path: Path) -> Logger:
        raise NotImplementedError("Return your Logger instance from make_logger(tmp_path).")

    def read_metrics(self, logger: Logger) -> list[tuple[int, Mapping[str, float]]]:
        """What the logger stored, as ``(step, metrics)`` pairs in order (after finalize)."""
        raise NotImplementedError("Return the stored (step, metrics) pairs from read_metrics(logger).")

    def test_metrics_from_fabric_reach_the_logger(self, tmp_path: Path) -> None:
        logger = self.make_logger(tmp_path)
        fabric = Fabric(accelerator="cpu", loggers=[logger])
        fabric.log("loss", torch.tensor(0.5), step=0)
        fabric.log_dict({"loss": 0.25, "acc": 1}, step=1)
        logger.finalize("success")
        stored = self.read_metrics(logger)
        assert [step for step, _ in stored] == [0, 1], stored
        assert stored[0][1]["loss"] == pytest.approx(0.5) and stored[1][1]["acc"] == pytest.approx(1)

    def test_hyperparameters_and_properties(self, tmp_path: Path) -> None:
        logger = self.make_logger(tmp_path)
        logger.log_hyperparams({"lr": 0.1, "layers": 2})
        assert logger.name is None or isinstance(logger.name, str)
        assert logger.version is None or isinstance(logger.version, (int, str))
        logger.finalize("success")

    def test_teardown_finalizes(self, tmp_path: Path) -> None:
        logger = self.make_logger(tmp_path)
        fabric = Fabric(accelerator="cpu", loggers=[logger])

        def run(fabric: Fabric) -> Any:
            fabric.log("x", 1.0, step=0)

        fabric.launch(run)
        assert [step for step, _ in self.read_metrics(logger)] == [0]
