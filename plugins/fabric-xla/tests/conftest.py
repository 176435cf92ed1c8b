"""Shared setup for fabric-xla's tests: XLA on the CPU through PJRT, plugin autoload on.

The suite runs in an environment of its own (torch 2.9.1 and torch-xla 2.9.0; see the
add-on's README) with ``PJRT_DEVICE=CPU``, which is set here when the caller did not. The
tests find the add-on through its entry point, as users get it, each from a clean
environment (the kit's :func:`fabric_core.testing.isolated_environment`: no ``FABRIC_*``
switch or launcher variable leaking in).

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
from fabric_core.testing import clean_environment as clean_process_environment
from fabric_core.testing import isolated_environment

os.environ.setdefault("PJRT_DEVICE", "CPU")


def clean_environment(**overrides: str) -> dict[str, str]:
    """:func:`fabric_core.testing.clean_environment` plus ``overrides``; an override of ``""`` removes the variable."""
    env = clean_process_environment()
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
    with isolated_environment(monkeypatch, autoload=True):
        yield


@pytest.fixture
def root() -> Path:
    """The repository root (for ``examples/``)."""
    return Path(__file__).resolve().parents[3]
