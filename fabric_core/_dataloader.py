"""The object ``fabric.setup_dataloaders`` returns: batches on the device, epochs advanced, a data position.

:class:`FabricDataLoader` is importable from :mod:`fabric_core.wrappers` (and as Lightning's
``_FabricDataLoader``); it lives here because most of it is the data position that makes an
exact resume possible: what ``state_dict`` records, and how ``load_state_dict`` makes the
next iteration continue the saved epoch without loading the data it skips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from fabric_core.utilities.data import sized_len
from fabric_core.utilities.random_state import gather_per_rank, own_rank_entry

if TYPE_CHECKING:
    from fabric_core.strategies.strategy import Strategy


class FabricDataLoader:
    """Iterates the user's DataLoader, moving batches to ``device`` and advancing the epoch.

    It is also the run's **data position**, a stateful object for ``fabric.save``/``fabric.load``:
    ``state_dict()`` holds the epoch and the number of batches of it already yielded, and
    after ``load_state_dict()`` the next iteration continues that epoch right after the last
    batch yielded, with the same order, then the following epochs go on as usual. See
    :meth:`state_dict` for how the order is reproduced without loading the skipped data.

    A DataLoader that keeps its own position (torchdata's ``StatefulDataLoader``, anything with
    ``state_dict``/``load_state_dict``) is trusted with it: its state is saved alongside the
    epoch counter and it resumes itself.
    """

    def __init__(self, dataloader: Any, device: torch.device | None = None, strategy: Strategy | None = None) -> None:
        self._dataloader = dataloader
        self._device = device
        self._strategy = strategy
        self._num_iter_calls = 0  # epochs started; the epoch being iterated is this minus one
        self._batches_yielded = 0  # of the epoch being iterated
        self._epoch_finished = True
        self._epoch_start_rng: dict[str, Any] | None = None
        self._resume: _Resume | None = None

    @property
    def device(self) -> torch.device | None:
        return self._device

    def __len__(self) -> int:
        return len(self._dataloader)

    def __iter__(self) -> Iterator[Any]:
        resume, self._resume = self._resume, None
        epoch = self._num_iter_calls
        self._set_epoch(epoch)
        self._num_iter_calls = epoch + 1
        self._epoch_finished = False
        batches: Iterable[Any]
        if resume is None or resume.epoch_start_rng is None:  # the DataLoader resumes itself
            self._batches_yielded = 0 if resume is None else resume.skip
            # What the DataLoader draws at the start of an epoch (its base seed, a shuffling
            # sampler's seed) comes from these generators: kept so a resume can draw it again.
            self._epoch_start_rng = _capture_generators(self._generators())
            batches = self._dataloader
        else:
            self._batches_yielded = resume.skip
            self._epoch_start_rng = resume.epoch_start_rng
            batches = self._resumed_batches(resume.skip, resume.epoch_start_rng)
        device, strategy = self._device, self._strategy
        if device is None or strategy is None:
            for batch in batches:
                self._batches_yielded += 1
                yield batch
        else:
            for batch in strategy.batches_to_device(batches, device):
                self._batches_yielded += 1
                yield batch
        self._epoch_finished = True

    def state_dict(self) -> dict[str, Any]:
        """The data position: ``{"epoch", "batches_yielded", "ranks"}``.

        ``epoch`` is the epoch the next batch comes from and ``batches_yielded`` how many of its
        batches were already handed out (0 between epochs). ``ranks`` holds, per global rank, the
        states of the generators the DataLoader draws from at the start of an epoch (torch's
        global CPU generator and any ``generator=`` of the loader or its sampler) as they were
        when this epoch began, and the loader's own generators as they are now. Resuming sets
        the first ones again, lets the sampler draw this epoch's order, skips the consumed
        batches' indices (their data is never loaded) and puts the generators back as they were
        before the resumed iteration started.

        A collective under ``torch.distributed``: call it on every process (``fabric.save`` does).
        """
        if self._resume is not None:  # loaded, not iterated yet: still the loaded position
            epoch, yielded, start = self._resume.epoch, self._resume.skip, self._resume.epoch_start_rng
        elif self._epoch_finished:
            epoch, yielded, start = self._num_iter_calls, 0, None
        else:
            epoch, yielded, start = self._num_iter_calls - 1, self._batches_yielded, self._epoch_start_rng
        own: dict[str, Any] = {"epoch_start": start, "generators": [g.get_state() for g in self._generators()[1:]]}
        if self._resumes_itself():
            own = {"epoch_start": None, "generators": [], "dataloader": self._dataloader.state_dict()}
        ranks = gather_per_rank(own)
        return {"epoch": epoch, "batches_yielded": yielded, "ranks": ranks}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Make the next iteration continue the saved epoch after its last yielded batch.

        :raises ValueError: when the state is not a data position, claims more batches than an
            epoch of this loader has, or comes from another world size mid-epoch.
        """
        if not isinstance(state_dict, dict) or not {"epoch", "batches_yielded", "ranks"} <= set(state_dict):
            raise ValueError(
                "FabricDataLoader.load_state_dict() expects the data position that its state_dict() returned "
                f"(keys 'epoch', 'batches_yielded', 'ranks'), got {_describe(state_dict)}. Check that the checkpoint "
                "key you load into the dataloader is the one you saved it under."
            )
        epoch, skip = int(state_dict["epoch"]), int(state_dict["batches_yielded"])
        length = sized_len(self._dataloader)
        if epoch < 0 or skip < 0 or (length is not None and skip > length):
            raise ValueError(
                f"FabricDataLoader.load_state_dict(): the checkpoint says {skip} batches of epoch {epoch} were "
                f"consumed, but an epoch of this dataloader has {length} batches. Resume with the same dataset, "
                "batch size and number of processes as the saved run."
            )
        ranks = state_dict["ranks"]
        if skip == 0 and len(ranks) != _world_size():
            own = None  # between epochs nothing is per process: any world size continues from here
        else:
            own = own_rank_entry(ranks, "FabricDataLoader.load_state_dict()")
        resumes_itself = self._resumes_itself()
        if own is not None and resumes_itself != ("dataloader" in own):
            saved, now = ("kept", "does not") if "dataloader" in own else ("did not keep", "does")
            raise ValueError(
                f"FabricDataLoader.load_state_dict(): the saved DataLoader {saved} its own position (state_dict/"
                f"load_state_dict, as torchdata's StatefulDataLoader), this {type(self._dataloader).__name__} {now}. "
                "Resume with the same kind of DataLoader as the saved run."
            )
        if own is not None and resumes_itself:
            self._dataloader.load_state_dict(own["dataloader"])
        elif own is not None:
            generators = self._generators()[1:]
            if len(own["generators"]) != len(generators):
                raise ValueError(
                    f"FabricDataLoader.load_state_dict(): the saved dataloader drew from {len(own['generators'])} "
                    f"torch.Generator(s) of its own (DataLoader or sampler generator=...), this one from "
                    f"{len(generators)}. Build the DataLoader as in the saved run."
                )
            for generator, saved in zip(generators, own["generators"], strict=True):
                generator.set_state(saved)
        self._num_iter_calls = epoch
        self._epoch_finished = True
        self._resume = None
        if skip > 0 and own is not None:
            self._resume = _Resume(epoch, skip, None if resumes_itself else own["epoch_start"])

    def _resumes_itself(self) -> bool:
        """Whether the user's DataLoader saves and restores its own position (``StatefulDataLoader``)."""
        inner = self._dataloader
        return callable(getattr(inner, "state_dict", None)) and callable(getattr(inner, "load_state_dict", None))

    def _set_epoch(self, epoch: int) -> None:
        # Samplers that shuffle per epoch (DistributedSampler) need set_epoch, whether they sit
        # on the loader or inside its batch sampler; each is told once.
        batch_sampler = getattr(self._dataloader, "batch_sampler", None)
        candidates = (
            getattr(self._dataloader, "sampler", None),
            batch_sampler,
            getattr(batch_sampler, "sampler", None),
        )
        told: set[int] = set()
        for sampler in candidates:
            set_epoch = getattr(sampler, "set_epoch", None)
            if callable(set_epoch) and id(sampler) not in told:
                told.add(id(sampler))
                set_epoch(epoch)

    def _generators(self) -> list[torch.Generator]:
        """torch's default CPU generator, then the loader's and its samplers' own generators (each once)."""
        loader = self._dataloader
        batch_sampler = getattr(loader, "batch_sampler", None)
        found: list[torch.Generator] = [torch.default_generator]
        for owner in (loader, getattr(loader, "sampler", None), getattr(batch_sampler, "sampler", None)):
            generator = getattr(owner, "generator", None)
            if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
                found.append(generator)
        return found

    def _resumed_batches(self, skip: int, epoch_start_rng: dict[str, Any]) -> Iterable[Any]:
        """The rest of the resumed epoch, drawn in the saved run's order."""
        loader = self._dataloader
        length = sized_len(loader)
        if length is not None and skip >= length:
            return ()  # the epoch was used up: the next iteration starts the next one
        generators = self._generators()
        now = _capture_generators(generators)
        _restore_generators(generators, epoch_start_rng)

        def after_skip() -> None:
            _restore_generators(generators, now)

        skipping = _skipping_loader(loader, skip, after_skip)
        if skipping is not None:
            return skipping
        # No sampler to slice (an iterable dataset, a loader that cannot be re-created):
        # draw the consumed batches and drop them, which loads their data.
        iterator: Iterator[Any] = iter(loader)
        for _ in range(skip):
            if next(iterator, _EXHAUSTED) is _EXHAUSTED:
                break
        after_skip()
        return iterator

    def __getattr__(self, name: str) -> Any:
        if name == "_dataloader":
            raise AttributeError(name)
        return getattr(self._dataloader, name)


class _Resume:
    """A data position loaded into a FabricDataLoader and not iterated yet.

    A plain class rather than a dataclass: it is defined at ``import fabric_core``, and a
    frozen dataclass costs half a millisecond to create.
    """

    __slots__ = ("epoch", "epoch_start_rng", "skip")

    def __init__(self, epoch: int, skip: int, epoch_start_rng: dict[str, Any] | None) -> None:
        self.epoch = epoch
        self.skip = skip
        self.epoch_start_rng = epoch_start_rng  # None: the user's DataLoader resumes itself


_EXHAUSTED = object()


class _SkipFirst:
    """An index sampler that leaves out the first ``skip`` items of another.

    Only indices are drawn for the skipped items, so their data is never loaded. The
    ``after_skip`` callback runs once they are drawn, before the first item is handed out.
    """

    def __init__(self, sampler: Any, skip: int, after_skip: Callable[[], None]) -> None:
        self.sampler = sampler
        self.skip = skip
        self.after_skip = after_skip

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)

    def __iter__(self) -> Iterator[Any]:
        iterator = iter(self.sampler)
        for _ in range(self.skip):
            if next(iterator, _EXHAUSTED) is _EXHAUSTED:
                break
        self.after_skip()
        yield from iterator


def _skipping_loader(loader: Any, skip: int, after_skip: Callable[[], None]) -> Iterator[Any] | None:
    """A one-epoch copy of ``loader`` whose index sampler skips ``skip`` batches; ``None`` when there is none."""
    from torch.utils.data import DataLoader

    from fabric_core.data import _recreate

    if not isinstance(loader, DataLoader) or loader._dataset_kind == 1:  # 1: an IterableDataset
        return None
    if loader.batch_sampler is not None:
        replacement: dict[str, Any] = {"batch_sampler": _SkipFirst(loader.batch_sampler, skip, after_skip)}
    else:
        replacement = {"sampler": _SkipFirst(loader.sampler, skip, after_skip)}
    # One epoch only: workers kept alive for later epochs would belong to a copy used once.
    replacement["persistent_workers"] = False
    try:
        return iter(_recreate(loader, replacement))
    except TypeError:  # a subclass whose arguments are not stored as attributes
        return None


def _world_size() -> int:
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    return torch.distributed.get_world_size() if distributed else 1


def _capture_generators(generators: list[torch.Generator]) -> dict[str, Any]:
    return {"torch": generators[0].get_state(), "generators": [g.get_state() for g in generators[1:]]}


def _restore_generators(generators: list[torch.Generator], states: dict[str, Any]) -> None:
    generators[0].set_state(states["torch"])
    for generator, state in zip(generators[1:], states["generators"], strict=True):
        generator.set_state(state)


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    return f"a {type(value).__name__}"
