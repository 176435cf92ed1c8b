"""Shared test setup.

The core suite runs with plugin autoload off (DESIGN.md section 4): an add-on installed in
the same environment never changes core test results. Tests that exercise discovery set
their own switches and reset the cache.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ["FABRIC_DISABLE_PLUGIN_AUTOLOAD"] = "1"


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
