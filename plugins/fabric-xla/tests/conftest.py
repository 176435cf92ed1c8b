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
from collections.abc import Iterator
from pathlib import Path

import pytest
from fabric_core.testing import isolated_environment

os.environ.setdefault("PJRT_DEVICE", "CPU")


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
