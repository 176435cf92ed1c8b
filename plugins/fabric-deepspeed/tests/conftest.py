"""Shared setup for fabric-deepspeed's tests.

These tests run with plugin autoload **on**: they test the add-on as users get it, found
through its entry point. Each test starts from a clean environment (the kit's
:func:`fabric_core.testing.isolated_environment`: no ``FABRIC_*`` switch or launcher
variable leaking in, and no DeepSpeed config named by ``PL_DEEPSPEED_CONFIG_PATH``), and the
processes it starts get :func:`fabric_core.testing.clean_environment`.

Multi-process tests run real scripts (``python script.py``) whose ``fabric.launch()`` starts
the second rank, over gloo on the CPU, as users run them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fabric_core.testing import ScriptRun, clean_environment, isolated_environment
from fabric_core.testing import run_script as run_program

#: what the ``run_script`` fixture returns (``returncode``, ``output``; ``check()`` asserts success)
Run = ScriptRun


@pytest.fixture(autouse=True)
def _autoload_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("PL_DEEPSPEED_CONFIG_PATH", raising=False)
    with isolated_environment(monkeypatch, autoload=True):
        yield


@pytest.fixture
def clean_env() -> Callable[..., dict[str, str]]:
    """:func:`fabric_core.testing.clean_environment`, for tests that start their own subprocesses."""
    return clean_environment


@pytest.fixture
def run_script(tmp_path: Path) -> Callable[..., Run]:
    """Write ``source`` to ``tmp_path/script.py`` and run it with ``args``; stdout and stderr together."""

    def run(source: str, *args: str, timeout: float = 240, env: dict[str, str] | None = None) -> Run:
        return run_program(tmp_path, source, *args, timeout=timeout, env=env)

    return run
