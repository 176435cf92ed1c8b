"""Distributed helpers that Lightning exposes publicly: a shared-filesystem check, and a
sampler wrapper that shards any sampler over processes."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator, Sized
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

__all__ = ["DistributedSamplerWrapper", "is_shared_filesystem"]


def is_shared_filesystem(strategy: Any, path: str | Path | None = None, timeout: int = 3) -> bool:
    """Whether every process of ``strategy``'s run sees the same files under ``path``.

    Rank 0 writes a file with a unique name into ``path`` (the working directory by
    default); every rank then looks for it (waiting up to ``timeout`` seconds for slow
    network file systems) and the answers are combined. One process is always shared.

    :param strategy: the run's strategy (``fabric.strategy``), for its collectives.
    """
    if getattr(strategy, "world_size", 1) == 1:
        return True
    folder = Path(path if path is not None else os.getcwd())
    name = strategy.broadcast(f".fabric_shared_fs_check_{uuid.uuid4().hex}" if strategy.is_global_zero else None)
    probe = folder / name
    if strategy.is_global_zero:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, delete=False) as handle:
            handle.write(b"shared?")
        os.replace(handle.name, probe)
    strategy.barrier()
    import time

    deadline = time.monotonic() + timeout
    found = probe.exists()
    while not found and time.monotonic() < deadline:
        time.sleep(0.1)
        found = probe.exists()
    shared = bool(strategy.reduce_boolean_decision(found, all=True))
    strategy.barrier()
    if strategy.is_global_zero:
        probe.unlink(missing_ok=True)
    return shared


class _SamplerIndices(Dataset[int]):
    """The indices one pass of a sampler yields, as a dataset (so DistributedSampler can split them)."""

    def __init__(self, sampler: Sampler[Any]) -> None:
        self._sampler = sampler
        self._indices: list[Any] | None = None

    def reset(self) -> None:
        self._indices = list(self._sampler)

    def __getitem__(self, index: int) -> Any:
        if self._indices is None:
            self.reset()
        assert self._indices is not None
        return self._indices[index]

    def __len__(self) -> int:
        if isinstance(self._sampler, Sized):
            return len(self._sampler)
        if self._indices is None:
            self.reset()
        assert self._indices is not None
        return len(self._indices)


class DistributedSamplerWrapper(DistributedSampler[Any]):
    """Shard the indices of any ``sampler`` (a weighted one, a custom one) over processes.

    Each epoch draws the wrapped sampler's indices once and gives this rank its share, as
    :class:`torch.utils.data.DistributedSampler` does for a dataset. Arguments after
    ``sampler`` are ``DistributedSampler``'s (``num_replicas``, ``rank``, ``shuffle``, ...).
    """

    def __init__(self, sampler: Sampler[Any], *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("shuffle", False)  # the wrapped sampler decides the order
        super().__init__(_SamplerIndices(sampler), *args, **kwargs)

    def __iter__(self) -> Iterator[Any]:
        indices = self.dataset
        assert isinstance(indices, _SamplerIndices)
        indices.reset()
        return (indices[position] for position in super().__iter__())


def _distributed_is_initialized() -> bool:
    """Whether a default process group exists (``False`` where torch.distributed is missing)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()
