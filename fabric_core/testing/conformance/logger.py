"""The logger suite: metrics from ``fabric.log`` reach the logger, in order, and the run's end finalizes it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from fabric_core.fabric import Fabric
from fabric_core.loggers.logger import Logger

__all__ = ["LoggerConformance"]


class LoggerConformance:
    """For metric loggers. Implement :meth:`make_logger` and :meth:`read_metrics`."""

    def make_logger(self, tmp_path: Path) -> Logger:
        """A new logger writing under ``tmp_path``."""
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
