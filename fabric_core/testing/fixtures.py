"""The kit's pytest fixtures (the plugin module, :mod:`fabric_core.testing`, exposes them).

Loaded in every pytest session of an environment with fabric-core, so it imports only
pytest at module level; each fixture imports what it needs when a test asks for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from fabric_core.testing.sandbox import PluginSandbox

__all__ = ["conformance_run", "fabric_plugins"]


@pytest.fixture
def fabric_plugins(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PluginSandbox]:
    """A :class:`~fabric_core.testing.PluginSandbox`: register or install add-ons for this test only.

    ``fabric_plugins.register(module_or_import_path)`` makes a module an entry point that
    discovery loads, whatever the autoload switch says; ``fabric_plugins.load_only(name)``
    loads one installed add-on in a suite that runs with autoload off.
    """
    from fabric_core.testing.sandbox import PluginSandbox

    sandbox = PluginSandbox(tmp_path_factory.mktemp("fabric-plugins"), monkeypatch)
    try:
        yield sandbox
    finally:
        sandbox.close()


@pytest.fixture
def conformance_run(tmp_path: Path) -> Callable[..., str]:
    """``conformance_run(strategy, devices, precision="32-true", launcher=None, ...)``: the checks on N processes.

    :func:`~fabric_core.testing.run_training_script` in ``tmp_path``: every rank checks the
    collectives, trains, and saves, loads and resumes a checkpoint. ``launcher="torchrun"``
    (or ``"fabric"``, or a command as a list) starts the processes from outside; by default
    the script's ``fabric.launch()`` does. Returns the output; raises ``AssertionError``
    with it when a rank fails.
    """

    from fabric_core.testing.scripts import run_training_script

    def run(strategy: str, devices: int, precision: str = "32-true", **kwargs: object) -> str:
        return run_training_script(strategy, devices, tmp_path, precision=precision, **kwargs)  # type: ignore[arg-type]

    return run
