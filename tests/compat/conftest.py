"""Compat tests start without scheduler variables (the machine may be a SLURM job) and put
back the SIGUSR1 handler that ``SLURMEnvironment()`` installs by default."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

_PREFIXES = ("SLURM_", "LSB_", "JSM_", "OMPI_", "PMI_", "PMIX_", "TORCHELASTIC_")
_NAMES: tuple[str, ...] = ("RANK", "LOCAL_RANK", "GROUP_RANK", "NODE_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")
_NAMES += ("MASTER_ADDR", "MASTER_PORT")


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name in _NAMES or name.startswith(_PREFIXES):
            monkeypatch.delenv(name)
    before = signal.getsignal(signal.SIGUSR1)
    yield
    signal.signal(signal.SIGUSR1, before)
