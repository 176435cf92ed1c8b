"""Small helpers about data: attribute dicts, dataset lengths and DataLoader worker counts.

(``fabric.setup_dataloaders`` itself lives in :mod:`fabric_core.data`.)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

__all__ = ["AttributeDict", "has_iterable_dataset", "has_len", "sized_len", "suggested_max_num_workers"]


class AttributeDict(dict[str, Any]):
    """A dict whose keys are also attributes: ``hparams.lr`` is ``hparams["lr"]``.

    A missing attribute raises ``AttributeError`` (not ``KeyError``), so ``hasattr`` and
    ``getattr(d, name, default)`` behave.
    """

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError as err:
            raise AttributeError(f"{type(self).__name__} has no key {key!r}; it has {sorted(self)}.") from err

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError as err:
            raise AttributeError(key) from err

    def __repr__(self) -> str:
        if not self:
            return ""
        width = max(len(str(key)) for key in self)
        return "\n".join(f'"{key}":{" " * (width - len(str(key)) + 1)}{value}' for key, value in sorted(self.items()))


def sized_len(obj: object) -> int | None:
    """``len(obj)``, or ``None`` when it has no length (an iterable dataset, a generator)."""
    try:
        return len(obj)  # type: ignore[arg-type]
    except (TypeError, NotImplementedError):
        return None


def has_len(obj: object) -> bool:
    """Whether ``obj`` (a DataLoader, a dataset) has a length.

    :raises ValueError: when the length is 0: a DataLoader without batches is almost always a mistake.
    """
    length = sized_len(obj)
    if length == 0:
        raise ValueError(f"{type(obj).__name__} has length 0: it yields no batch. Check the dataset and batch size.")
    return length is not None


def has_iterable_dataset(dataloader: Any) -> bool:
    """Whether ``dataloader`` reads an ``IterableDataset`` (which has no sampler to shard)."""
    from torch.utils.data import IterableDataset

    return isinstance(getattr(dataloader, "dataset", None), IterableDataset)


def suggested_max_num_workers(local_world_size: int) -> int:
    """An upper bound for ``DataLoader(num_workers=...)``: the CPU cores available to this
    process, shared by the ``local_world_size`` processes of this machine, keeping one per
    process for the main loop (never below 1).

    :raises ValueError: when ``local_world_size`` is below 1.
    """
    if local_world_size < 1:
        raise ValueError(f"suggested_max_num_workers(local_world_size={local_world_size}): it must be 1 or more.")
    cores = _available_cores()
    return max(1, cores // local_world_size - 1)


def _available_cores() -> int:
    affinity: Iterable[int] | None = getattr(os, "sched_getaffinity", lambda _pid: None)(0)
    if affinity is not None:
        return max(1, len(list(affinity)))
    return os.cpu_count() or 1
