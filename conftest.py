"""Shared by every suite in the repository (the core's tests/ and each add-on's plugins/*/tests).

Each test gets back the process environment it started with. Code under test writes to
``os.environ`` on purpose, as Lightning does (a launcher sets ``MASTER_ADDR``/``MASTER_PORT``
for the processes it starts; the torchrun environment writes its default port back), and a
value left behind would reach every later test and the processes it starts: a stale
``MASTER_PORT`` makes two runs fight over one port.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)
