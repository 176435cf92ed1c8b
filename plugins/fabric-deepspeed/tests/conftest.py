"""Shared setup for fabric-deepspeed's tests.

These tests run with plugin autoload **on**: they test the add-on as users get it, found
through its entry point. fabric-core's own suite switches autoload off per test
(``tests/conftest.py`` at the root), which does not reach here; in case a switch leaks in
from the environment, every test here clears them, and subprocesses get an environment
without them.

Multi-process tests run real scripts (``python script.py``) whose ``fabric.launch()`` starts
the second rank, over gloo on the CPU, as users run them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Switches of fabric-core's discovery; none may be set for these tests.
SWITCHES = ("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "FABRIC_PLUGINS", "FABRIC_BLOCK_PLUGINS")
#: Variables a launcher or an earlier run may leave behind, which would change a child's role.
_RUN_VARIABLES = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR", "NODE_RANK")


def clean_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without fabric-core's switches and run variables, plus ``overrides``.

    ``OMP_NUM_THREADS=1``: two ranks on two cores; more threads each only contend (``fabric run``
    and torchrun set it the same way).
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in SWITCHES and key not in _RUN_VARIABLES and not key.startswith(("FABRIC_", "PL_DEEPSPEED"))
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

    for switch in SWITCHES:
        monkeypatch.delenv(switch, raising=False)
    for variable in ("FABRIC_DEEPSPEED_CONFIG_PATH", "PL_DEEPSPEED_CONFIG_PATH"):
        monkeypatch.delenv(variable, raising=False)
    reset()
    yield
    reset()


@pytest.fixture
def clean_env() -> Callable[..., dict[str, str]]:
    """:func:`clean_environment`, for tests that start their own subprocesses."""
    return clean_environment


@pytest.fixture
def run_script(tmp_path: Path) -> Callable[..., Run]:
    """Write ``source`` to ``tmp_path/script.py`` and run it with ``args``; stdout and stderr together."""

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
