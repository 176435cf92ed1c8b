"""fabric_core.testing: conformance checks for plugin authors (a pytest plugin).

A plugin's test suite proves its component behaves as Fabric expects by subclassing a
conformance class and saying how to build the component:

.. code-block:: python

    from fabric_core.testing import LoggerConformance, PrecisionConformance

    class TestMyLogger(LoggerConformance):
        def make_logger(self, tmp_path):
            return MyLogger(tmp_path)

Multi-process strategies are checked from inside a launched run with the ``check_*``
functions, or from a test with :func:`run_training_script`, which starts a real
training script on N processes with any registered strategy name. With
``pytest_plugins = ["fabric_core.testing"]`` in a ``conftest.py``, the ``conformance_run``
fixture does the same in a temporary folder: ``conformance_run("deepspeed_stage_2", 2)``.
"""

from collections.abc import Callable
from pathlib import Path

import pytest

from fabric_core.testing.checks import check_checkpoint_round_trip, check_collectives, check_training_reduces_loss
from fabric_core.testing.conformance import LoggerConformance, PrecisionConformance, StrategyConformance
from fabric_core.testing.scripts import run_training_script

__all__ = [
    "LoggerConformance",
    "PrecisionConformance",
    "StrategyConformance",
    "check_checkpoint_round_trip",
    "check_collectives",
    "check_training_reduces_loss",
    "run_training_script",
]


@pytest.fixture
def conformance_run(tmp_path: Path) -> Callable[..., str]:
    """``conformance_run(strategy, devices, precision="32-true")``: :func:`run_training_script` in ``tmp_path``."""

    def run(strategy: str, devices: int, precision: str = "32-true", **kwargs: object) -> str:
        return run_training_script(strategy, devices, tmp_path, precision=precision, **kwargs)  # type: ignore[arg-type]

    return run
