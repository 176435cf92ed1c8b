"""Shared test setup.

The core suite runs with plugin autoload off (DESIGN.md section 4): an add-on installed in
the same environment never changes core test results. The switch is set per test (and so
reaches the subprocesses a test starts), not for the whole session, so the add-ons' own
suites under plugins/ run in the same pytest session with their plugins loaded. Discovery
re-runs by itself when a switch changes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _without_addons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.fixture(autouse=True)
def _without_global_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    # seed_everything keeps its seed in the environment (as Lightning does), where the
    # samplers and spawned processes read it; one test's seed must not reach the next.
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    monkeypatch.delenv("PL_SEED_WORKERS", raising=False)


@pytest.fixture(autouse=True)
def _restore_rank_zero() -> Iterator[None]:
    from fabric_core.utilities.rank_zero import rank_zero_only

    rank = rank_zero_only.rank  # type: ignore[attr-defined]
    yield
    rank_zero_only.rank = rank  # type: ignore[attr-defined]


@pytest.fixture
def fresh_discovery() -> Iterator[None]:
    """Forget cached discovery before and after the test (for tests that change switches or sys.path)."""
    from fabric_core import _discovery

    _discovery.reset()
    yield
    _discovery.reset()
