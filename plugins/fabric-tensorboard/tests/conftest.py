"""Shared setup for fabric-tensorboard's tests.

These tests run with plugin autoload **on**: they test the add-on as users get it, found
through its entry point. Each test starts from a clean environment (the kit's
:func:`fabric_core.testing.isolated_environment`: no ``FABRIC_*`` switch or launcher
variable leaking in, rank-zero output on rank 0), and the processes it starts get
:func:`fabric_core.testing.clean_environment`.

What a logger wrote is read back with TensorBoard's own reader
(``tensorboard.backend.event_processing.event_accumulator.EventAccumulator``), the one the
TensorBoard server uses, through the ``events`` fixture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fabric_core.testing import ScriptRun, clean_environment, isolated_environment
from fabric_core.testing import run_script as run_program

#: what the ``run_script`` fixture returns (``returncode``, ``output``; ``check()`` asserts success)
Run = ScriptRun


@pytest.fixture(autouse=True)
def _autoload_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with isolated_environment(monkeypatch, autoload=True):
        yield


@pytest.fixture
def clean_env() -> Callable[..., dict[str, str]]:
    """:func:`fabric_core.testing.clean_environment`, for tests that start their own subprocesses."""
    return clean_environment


@pytest.fixture
def run_script(tmp_path: Path) -> Callable[..., Run]:
    """Write ``source`` to ``tmp_path/script.py`` and run it in ``tmp_path``; stdout and stderr together."""

    def run(source: str, *args: str, timeout: float = 240, env: dict[str, str] | None = None) -> Run:
        return run_program(tmp_path, source, *args, timeout=timeout, env=env)

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
