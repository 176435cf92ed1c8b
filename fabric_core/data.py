"""Giving each process its share of the data: sampler injection for DataLoaders.

``fabric.setup_dataloaders`` calls :func:`distribute_dataloader` when more than one process
runs. A DataLoader with the default samplers gets a ``DistributedSampler`` (shuffling if
the original did); a custom sampler is wrapped so each rank takes every n-th index it
yields; a custom batch sampler is wrapped so each rank takes every n-th batch. The
DataLoader is re-created with its own class and arguments, so subclasses keep working.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sized
from typing import Any

from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from fabric_core.utilities.seed import sampler_seed


class _SamplerAsDataset(Dataset[int]):
    """The indices a sampler yields (for one epoch), as a dataset DistributedSampler can split."""

    def __init__(self, sampler: Sampler[Any]) -> None:
        self._sampler = sampler
        self._indices: list[Any] | None = None

    def refresh(self) -> None:
        self._indices = list(self._sampler)

    def __getitem__(self, index: int) -> Any:
        if self._indices is None:
            self.refresh()
        assert self._indices is not None
        return self._indices[index]

    def __len__(self) -> int:
        return len(self._sampler)  # type: ignore[arg-type]


class DistributedSamplerWrapper(DistributedSampler):
    """Splits the indices of any sampler (weighted, custom, ...) between processes."""

    def __init__(self, sampler: Sampler[Any], num_replicas: int | None = None, rank: int | None = None) -> None:
        if not isinstance(sampler, Sized):
            raise TypeError(
                f"A {type(sampler).__name__} without __len__ cannot be split between processes. Give it a __len__, "
                "or pass use_distributed_sampler=False and shard the data yourself."
            )
        self._wrapped = sampler
        super().__init__(_SamplerAsDataset(sampler), num_replicas=num_replicas, rank=rank, shuffle=False)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        inner = getattr(self._wrapped, "set_epoch", None)
        if callable(inner):
            inner(epoch)

    def __iter__(self) -> Iterator[Any]:
        self.dataset.refresh()  # type: ignore[attr-defined]
        dataset = self.dataset
        return (dataset[index] for index in super().__iter__())


class DistributedBatchSamplerWrapper(Sampler[list[Any]]):
    """Each process takes every ``num_replicas``-th batch of a custom batch sampler.

    The batches of an epoch are padded by repeating the first ones until every process gets
    the same number (as DistributedSampler pads indices): a rank with one batch more than the
    others would wait forever for them in its gradient sync.
    """

    def __init__(self, batch_sampler: Any, num_replicas: int, rank: int) -> None:
        self.batch_sampler = batch_sampler
        self.num_replicas = num_replicas
        self.rank = rank

    def set_epoch(self, epoch: int) -> None:
        inner = getattr(self.batch_sampler, "set_epoch", None)
        if callable(inner):
            inner(epoch)

    def __iter__(self) -> Iterator[list[Any]]:
        batches = list(self.batch_sampler)
        if not batches:
            return iter(())
        per_rank = -(-len(batches) // self.num_replicas)
        padded = [batches[index % len(batches)] for index in range(per_rank * self.num_replicas)]
        return iter(padded[self.rank :: self.num_replicas])

    def __len__(self) -> int:
        return -(-len(self.batch_sampler) // self.num_replicas)


def _distributed_sampler(sampler: Any, dataset: Any, num_replicas: int, rank: int) -> Sampler[Any]:
    if isinstance(sampler, DistributedSampler):
        return sampler  # the user already shards
    if isinstance(sampler, (RandomSampler, SequentialSampler)):
        # The shuffle follows the global seed (seed_everything), as in Lightning Fabric: two
        # seeds give two orders, the same seed the same order as Lightning.
        return DistributedSampler(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=isinstance(sampler, RandomSampler),
            seed=sampler_seed(),
        )
    return DistributedSamplerWrapper(sampler, num_replicas=num_replicas, rank=rank)


def distribute_dataloader(dataloader: Any, num_replicas: int, rank: int) -> Any:
    """A copy of ``dataloader`` that yields only this rank's share; other iterables pass through."""
    if not isinstance(dataloader, DataLoader):
        return dataloader
    if isinstance(dataloader.sampler, DistributedSampler) or isinstance(
        getattr(dataloader.batch_sampler, "sampler", None), DistributedSampler
    ):
        return dataloader
    if dataloader._dataset_kind == 1:  # an IterableDataset: sharding is the dataset's job
        return dataloader
    batch_sampler: Any = dataloader.batch_sampler
    replacement: dict[str, Any]
    if batch_sampler is not None and type(batch_sampler) is not BatchSampler:
        replacement = {"batch_sampler": DistributedBatchSamplerWrapper(batch_sampler, num_replicas, rank)}
    elif batch_sampler is not None:
        sampler = _distributed_sampler(batch_sampler.sampler, dataloader.dataset, num_replicas, rank)
        replacement = {
            "sampler": sampler,
            "batch_size": batch_sampler.batch_size,
            "drop_last": batch_sampler.drop_last,
            "shuffle": None,
            "batch_sampler": None,
        }
    else:  # batch_size=None: the sampler yields whole batches' indices one at a time
        sampler = _distributed_sampler(dataloader.sampler, dataloader.dataset, num_replicas, rank)  # type: ignore[arg-type]
        replacement = {"sampler": sampler}
    return _recreate(dataloader, replacement)


def _recreate(dataloader: DataLoader, replacement: dict[str, Any]) -> DataLoader:
    """Build ``type(dataloader)`` again from its own attributes, with ``replacement`` applied."""
    cls = type(dataloader)
    parameters = inspect.signature(cls.__init__).parameters
    accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    arguments: dict[str, Any] = {}
    missing = []
    for name, parameter in list(parameters.items())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if name in replacement:
            arguments[name] = replacement[name]
        elif hasattr(dataloader, name):
            arguments[name] = getattr(dataloader, name)
        elif parameter.default is parameter.empty:
            missing.append(name)
    if missing:
        raise TypeError(
            f"fabric.setup_dataloaders() must re-create your {cls.__name__} with a distributed sampler, but its "
            f"__init__ argument(s) {missing} are not stored as attributes of the same name, so it cannot. Store "
            "them as attributes (self.<name> = <name>), or pass use_distributed_sampler=False and give it a "
            "DistributedSampler yourself."
        )
    if accepts_kwargs or cls is DataLoader:
        for name, value in replacement.items():
            arguments.setdefault(name, value)
    if arguments.get("batch_sampler") is not None:
        for name in ("batch_size", "shuffle", "sampler", "drop_last"):
            arguments.pop(name, None)
    elif "batch_sampler" in arguments:
        arguments["batch_sampler"] = None
        arguments.pop("shuffle", None)
    return cls(**arguments)
