"""A clean environment for tests: nothing left by a launcher, a shell or an earlier test.

Fabric reads its process environment on purpose: a launcher's ``RANK`` and ``MASTER_PORT``
place a process in a run, ``FABRIC_*`` variables switch add-ons and logging, and
``seed_everything`` leaves its seed in ``PL_GLOBAL_SEED`` for the processes it starts. A
value that leaks into a test changes what it tests: a stale ``LOCAL_RANK`` makes a
two-process run wait forever for a rank that never comes, and ``FABRIC_PLUGINS`` set in a
developer's shell hides an add-on from its own suite.

* :func:`isolated_environment` cleans this process for one test (with ``monkeypatch``, so
  the test gets its environment back), with add-on autoload on or off;
* :func:`clean_environment` is the environment for a process a test starts: this one's,
  without the variables that would make the child join a run it does not belong to.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import pytest

from fabric_core.environments._variables import is_launcher_variable

__all__ = ["DISCOVERY_SWITCHES", "RUN_SETTINGS", "clean_environment", "isolated_environment"]

#: The variables that decide which add-ons discovery loads.
DISCOVERY_SWITCHES = ("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "FABRIC_PLUGINS", "FABRIC_BLOCK_PLUGINS")

#: What ``fabric run`` sets for the processes it starts, and what they read as ``Fabric()``'s arguments.
RUN_SETTINGS = (
    "FABRIC_ACCELERATOR",
    "FABRIC_STRATEGY",
    "FABRIC_DEVICES",
    "FABRIC_NUM_NODES",
    "FABRIC_PRECISION",
    "FABRIC_LAUNCHER_PID",
)

#: ``seed_everything`` keeps its seed here for the processes it starts (as Lightning does).
_SEED_VARIABLES = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")


def _places_a_process(name: str) -> bool:
    """Whether ``name`` tells a process where it stands in a run (a launcher's variable or ``fabric run``'s)."""
    return is_launcher_variable(name) or name in RUN_SETTINGS


def clean_environment(
    env: Mapping[str, str] | None = None, /, *, omp_threads: int | None = 1, **overrides: str
) -> dict[str, str]:
    """This process's environment for a process a test starts, plus ``env`` and ``overrides``.

    Left out: the variables of a launcher (torchrun's ``RANK``, ``MASTER_PORT``, ...,
    ``SLURM_*``, ``TORCHELASTIC_*``) and of ``fabric run`` (``FABRIC_DEVICES``, ...): the
    child starts its own run, and would otherwise try to join this one. Also left out:
    ``PYTHONUNBUFFERED``. Ranks share one pipe, and unbuffered, each ``print()`` is several
    writes (its arguments, the separators, the newline) that other ranks' lines cut into;
    buffered, ``print(..., flush=True)`` is one write of the whole line (and a marker that a
    test waits for must be flushed anyway). Everything else, the discovery switches
    included, is passed on, so a child sees add-ons as the test does.

    :param omp_threads: ``OMP_NUM_THREADS`` unless it is set already (``None``: leave it
        alone). One thread per process by default: test runs start several processes on
        few cores, where more threads each only contend (``fabric run`` and torchrun set it
        the same way).
    :param env: variables to set (``clean_environment({"PYTHONPATH": ...})``), applied last,
        with ``overrides`` (``clean_environment(PYTHONPATH=...)``).
    """
    environment = {name: value for name, value in os.environ.items() if not _places_a_process(name)}
    environment.pop("PYTHONUNBUFFERED", None)
    if omp_threads is not None:
        environment.setdefault("OMP_NUM_THREADS", str(omp_threads))
    environment.update(env or {})
    environment.update(overrides)
    return environment


@contextmanager
def isolated_environment(monkeypatch: pytest.MonkeyPatch, *, autoload: bool) -> Iterator[None]:
    """Clean this process for one test, through ``monkeypatch`` (undone after the test).

    Removed: every ``FABRIC_*`` variable (the discovery switches, logging settings, what
    ``fabric run`` set), every launcher variable, and the seed ``seed_everything`` left.
    With ``autoload=False``, ``FABRIC_DISABLE_PLUGIN_AUTOLOAD=1`` is set: only fabric-core's
    built-ins load, so an installed add-on never changes the result (the core's own suite);
    with ``True`` every installed add-on loads (an add-on's suite, which tests it as users
    get it). The cached discovery is forgotten before and after, and the rank that
    rank-zero-only output follows is 0 again (a Fabric of an earlier test may have set
    another one).

    Use it in a ``conftest.py``::

        @pytest.fixture(autouse=True)
        def _clean(monkeypatch):
            with isolated_environment(monkeypatch, autoload=True):
                yield
    """
    from fabric_core import discovery
    from fabric_core.utilities.rank_zero import rank_zero_only

    for name in list(os.environ):
        if name.startswith("FABRIC_") or _places_a_process(name) or name in _SEED_VARIABLES:
            monkeypatch.delenv(name)
    if not autoload:
        monkeypatch.setenv("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setattr(rank_zero_only, "rank", 0, raising=False)
    discovery.reset()
    try:
        yield
    finally:
        discovery.reset()
