"""Shared test setup for fabric-core's own suite.

The core suite runs with plugin autoload off (DESIGN.md section 4): an add-on installed in
the same environment never changes core test results. The switch is set per test (and so
reaches the subprocesses a test starts), not for the whole session, so the add-ons' own
suites under plugins/ can run in the same pytest session with their plugins loaded.

Each test also starts clean (the kit's :func:`fabric_core.testing.isolated_environment`):
no ``FABRIC_*`` variable from the shell, no launcher's ``RANK`` or ``MASTER_PORT``, no seed
that ``seed_everything`` left for an earlier test, rank-zero output on rank 0, and
discovery re-run. A test that needs an add-on loads it with the kit's ``fabric_plugins``
fixture (``fabric_plugins.register(...)``, ``fabric_plugins.load_only("fabric-x")``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fabric_core.testing import isolated_environment


@pytest.fixture(autouse=True)
def _without_addons(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with isolated_environment(monkeypatch, autoload=False):
        yield


@pytest.fixture
def fresh_discovery() -> Iterator[None]:
    """Forget cached discovery before and after the test (for tests that change switches or sys.path)."""
    from fabric_core import discovery

    discovery.reset()
    yield
    discovery.reset()
