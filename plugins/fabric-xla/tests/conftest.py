"""Shared setup for fabric-xla's tests: XLA on the CPU through PJRT, plugin autoload on.

The suite runs in an environment of its own (torch 2.9.1 and torch-xla 2.9.0; see the
add-on's README) with ``PJRT_DEVICE=CPU``, which is set here when the caller did not. The
tests find the add-on through its entry point, as users get it: fabric-core's own suite
switches autoload off per test, and any such switch leaking in from the environment is
cleared here.

The XLA device is started once, before any test: PyTorch's autograd engine sizes its
per-device queues at the first backward pass, so a CPU backward before the XLA runtime
exists would leave XLA backward passes of the same process without a queue (an internal
assert in ``engine.cpp``). Tests that compare against eager CPU training rely on this.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("PJRT_DEVICE", "CPU")

#: Switches of fabric-core's discovery; none may be set for these tests.
SWITCHES = ("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "FABRIC_PLUGINS", "FABRIC_BLOCK_PLUGINS")
#: Variables a launcher or an earlier run may leave behind, which would change a run's role.
_RUN_VARIABLES = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR", "NODE_RANK")


def clean_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without fabric-core's switches and run variables, plus ``overrides``.

    An override of ``""`` removes the variable.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in SWITCHES and key not in _RUN_VARIABLES and not key.startswith("FABRIC_")
    }
    env.setdefault("OMP_NUM_THREADS", "1")
    for key, value in overrides.items():
        if value == "":
            env.pop(key, None)
        else:
            env[key] = value
    return env


@dataclass
class Run:
    returncode: int
    output: str


@pytest.fixture
def python(tmp_path: Path) -> Callable[..., Run]:
    """Run ``code`` as a script in a clean environment (plugin autoload on); ``env`` overrides variables.

    A script file, not ``python -c``: XLA's launcher spawns processes that import ``__main__``.
    """

    def run(code: str, timeout: float = 240, **env: str) -> Run:
        script = tmp_path / "script.py"
        script.write_text(code)
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=clean_environment(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Run(result.returncode, result.stdout + result.stderr)

    return run


@pytest.fixture(scope="session", autouse=True)
def _xla_device_first() -> None:
    import torch
    import torch_xla

    (torch.ones(1, device=torch_xla.device()) * 2).cpu()


@pytest.fixture(autouse=True)
def _autoload_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from fabric_core.discovery import reset

    for name in (*SWITCHES, *_RUN_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    for name in [name for name in os.environ if name.startswith("FABRIC_")]:
        monkeypatch.delenv(name)
    reset()
    yield
    reset()


@pytest.fixture
def root() -> Path:
    """The repository root (for ``examples/``)."""
    return Path(__file__).resolve().parents[3]
