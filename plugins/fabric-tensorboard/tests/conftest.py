"""Shared setup for fabric-tensorboard's tests.

These tests run with plugin autoload **on**: they test the add-on as users get it, found
through its entry point. fabric-core's own suite switches autoload off per test, which does
not reach here; in case a switch leaks in from the environment, every test here clears
them, and subprocesses get an environment without them.

What a logger wrote is read back with TensorBoard's own reader
(``tensorboard.backend.event_processing.event_accumulator.EventAccumulator``), the one the
TensorBoard server uses, through the ``events`` fixture.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: Switches of fabric-core's discovery; none may be set for these tests.
SWITCHES = ("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "FABRIC_PLUGINS", "FABRIC_BLOCK_PLUGINS")
#: Variables a launcher or an earlier run may leave behind, which would change a child's role.
_RUN_VARIABLES = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR", "NODE_RANK")


def clean_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without fabric-core's switches and run variables, plus ``overrides``.

    ``OMP_NUM_THREADS=1``: two ranks on two cores; more threads each only contend.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in SWITCHES and key not in _RUN_VARIABLES and not key.startswith("FABRIC_")
    }
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(overrides)
    return env


@dataclass
class Run:
    returncode: int
    output: str

    def check(self) -> str:
        assert self.returncode == 0, self.output
        return self.output


@pytest.fixture(autouse=True)
def _autoload_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from fabric_core.discovery import reset
    from fabric_core.utilities.rank_zero import rank_zero_only

    for switch in SWITCHES:
        monkeypatch.delenv(switch, raising=False)
    # A Fabric of an earlier test may have set another rank; these tests run as rank 0.
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    reset()
    yield
    reset()


@pytest.fixture
def clean_env() -> Callable[..., dict[str, str]]:
    """:func:`clean_environment`, for tests that start their own subprocesses."""
    return clean_environment


@pytest.fixture
def run_script(tmp_path: Path) -> Callable[..., Run]:
    """Write ``source`` to ``tmp_path/script.py`` and run it in ``tmp_path``; stdout and stderr together."""

    def run(source: str, *args: str, timeout: float = 240, env: dict[str, str] | None = None) -> Run:
        script = tmp_path / "script.py"
        script.write_text(textwrap.dedent(source))
        result = subprocess.run(
            [sys.executable, str(script), *args],
            cwd=tmp_path,
            env=clean_environment(**(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Run(result.returncode, result.stdout + result.stderr)

    return run


class EventReader:
    """One run folder read back with TensorBoard's ``EventAccumulator`` (every event kept)."""

    def __init__(self, folder: str | Path) -> None:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        self.folder = Path(folder)
        # size_guidance 0 keeps every event: the default samples scalars down to 10,000.
        self.accumulator: Any = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
        self.accumulator.Reload()

    def scalars(self, tag: str) -> list[tuple[int, float]]:
        """``(step, value)`` of every event of ``tag``, in the order written."""
        return [(event.step, event.value) for event in self.accumulator.Scalars(tag)]

    def scalar_tags(self) -> list[str]:
        return sorted(self.accumulator.Tags()["scalars"])

    def hparams(self) -> dict[str, Any]:
        """The hparams plugin's data: ``experiment``, ``session_start_info``, ``session_end_info`` messages."""
        from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

        content = self.accumulator.PluginTagToContent("hparams")
        return {
            tag.rsplit("/", 1)[-1]: getattr(HParamsPluginData.FromString(data), tag.rsplit("/", 1)[-1])
            for tag, data in content.items()
        }

    def hparam_values(self) -> dict[str, Any]:
        """The session's hyperparameters as Python values (numbers, strings, booleans)."""
        start = self.hparams()["session_start_info"]
        values: dict[str, Any] = {}
        for key, value in start.hparams.items():
            values[key] = getattr(value, value.WhichOneof("kind"))
        return values

    def status(self) -> str:
        """The session's end status by name (``STATUS_SUCCESS``, ``STATUS_FAILURE``, ...)."""
        from tensorboard.plugins.hparams.api_pb2 import Status

        return str(Status.Name(self.hparams()["session_end_info"].status))

    def has_graph(self) -> bool:
        return bool(self.accumulator.Tags()["graph"])


@pytest.fixture
def events() -> Callable[[str | Path], EventReader]:
    """``events(folder)``: what TensorBoard reads from ``folder`` (see :class:`EventReader`)."""
    return EventReader


def float32(value: float) -> float:
    """``value`` as TensorBoard stores a scalar (a 32-bit float), for exact comparisons."""
    import numpy as np

    return float(np.float32(value))


@pytest.fixture
def as_stored() -> Callable[[float], float]:
    """:func:`float32`: a logged value as TensorBoard stores it."""
    return float32
