"""The checkpoint toolkit: the steps every strategy's ``save_checkpoint``/``load_checkpoint`` is made of.

One function for each step, used by the single-file path (:class:`~fabric_core.strategies.strategy.Strategy`),
the sharded one (:mod:`~fabric_core.strategies.sharded_checkpoint`) and add-ons such as
fabric-deepspeed, so a filter, a missing key, a restore or a directory swap means the same
everywhere:

- :func:`apply_filter` chooses the entries a save keeps;
- :func:`check_missing` refuses (``strict``) or warns about (``strict=False``) requested keys
  the checkpoint lacks;
- :func:`restore_into` puts loaded values into the live objects of a state;
- :func:`save_file` / :func:`load_file` are the whole single-file save and load;
- :func:`save_directory` writes a directory checkpoint from every rank into a staging folder,
  adds the manifest and swaps it in atomically (:mod:`~fabric_core.strategies.staging`);
  :func:`verify_directory` checks it against its manifest before a load touches anything.

A strategy or add-on author composes these; nothing here is private to fabric-core.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from torch.nn import Module
from torch.optim import Optimizer

from fabric_core.utilities.rank_zero import rank_zero_warn

if TYPE_CHECKING:
    from fabric_core.strategies.strategy import Strategy

__all__ = [
    "Collectives",
    "apply_filter",
    "check_missing",
    "is_stateful",
    "load_file",
    "restore_into",
    "save_directory",
    "save_file",
    "verify_directory",
    "warn_if_no_entry_matched",
    "warn_if_no_key_matched",
]


class Collectives(Protocol):
    """What :func:`save_directory` and :func:`verify_directory` need of a strategy (every ``Strategy`` has it)."""

    @property
    def is_global_zero(self) -> bool: ...

    @property
    def world_size(self) -> int: ...

    def broadcast(self, obj: Any, src: int = 0) -> Any: ...

    def barrier(self, name: str | None = None) -> None: ...


def is_stateful(obj: object) -> bool:
    """Whether ``obj`` has ``state_dict`` and ``load_state_dict`` (saved and restored through them)."""
    return callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))


def apply_filter(key: str, values: Any, filter: dict[str, Callable[[str, Any], bool]] | None) -> Any:
    """The entries of ``values`` (the state dict saved under ``key``) that ``filter[key]`` keeps.

    A filter for a plain value (an int, a string, a tensor) leaves it whole, as in Lightning
    Fabric (``fabric.save`` warns about such a filter before saving).
    """
    if filter is None or key not in filter or not isinstance(values, dict):
        return values
    return {name: value for name, value in values.items() if filter[key](name, value)}


def check_missing(
    path: object, requested: Iterable[str], available: Collection[str], strict: bool, *, besides: str = ""
) -> None:
    """Before a load: raise ``KeyError`` when ``strict`` and a requested key is not in the checkpoint.

    With ``strict=False``, warn instead when none of the requested keys is there (the load
    would restore nothing). ``besides`` qualifies the available keys in the message (for
    example ``" besides the models"``).
    """
    requested = list(requested)
    missing = [key for key in requested if key not in available]
    if strict and missing:
        raise KeyError(
            f"The requested state contains keys {missing} that the checkpoint {str(path)!r} does not have (it has "
            f"{sorted(available)}{besides}). Pass strict=False to load the keys that exist."
        )
    if not strict:
        warn_if_no_key_matched(path, requested, available)


def restore_into(
    state: dict[str, Any],
    checkpoint: dict[str, Any],
    load_module: Callable[[Module, Any], None],
    load_optimizer: Callable[[Optimizer, Any], None] | None = None,
    keys: Collection[str] | None = None,
) -> dict[str, Any]:
    """Restore each object of ``state`` from the entry of ``checkpoint`` under its key; return what is left.

    Models go through ``load_module``, optimizers through ``load_optimizer`` (else their own
    ``load_state_dict``), other stateful objects through ``load_state_dict``; a plain value
    replaces the one in ``state``. Entries used are removed from ``checkpoint``; keys absent
    from it are skipped (:func:`check_missing` decides about them first). ``keys`` limits the
    restore to those keys of ``state``.
    """
    for key, obj in list(state.items()):
        if key not in checkpoint or (keys is not None and key not in keys):
            continue
        value = checkpoint.pop(key)
        if isinstance(obj, Module):
            load_module(obj, value)
        elif isinstance(obj, Optimizer) and load_optimizer is not None:
            load_optimizer(obj, value)
        elif is_stateful(obj):
            obj.load_state_dict(value)
        else:
            state[key] = value
    return checkpoint


def save_file(
    strategy: Strategy,
    path: str | Path,
    state: dict[str, Any],
    filter: dict[str, Any] | None = None,
    storage_options: Any = None,
) -> None:
    """Write ``state`` as one file: every rank converts it, global rank 0 writes through ``strategy.checkpoint_io``."""
    checkpoint = strategy.convert_state(state, filter)
    if strategy.is_global_zero:
        strategy.checkpoint_io.save_checkpoint(checkpoint, path, storage_options=storage_options)


def load_file(
    strategy: Strategy,
    path: str | Path,
    state: dict[str, Any] | Module | Optimizer | None,
    strict: bool = True,
    weights_only: bool | None = None,
) -> dict[str, Any]:
    """Restore ``state`` (a dict, or one bare model or optimizer) from a single-file checkpoint; return the rest."""
    checkpoint = strategy.checkpoint_io.load_checkpoint(path, weights_only=weights_only)
    if state is None:
        return checkpoint
    if isinstance(state, Module):
        strategy.load_module_state_dict(state, checkpoint, strict=strict)
        return {}
    if isinstance(state, Optimizer):
        state.load_state_dict(checkpoint)
        return {}
    check_missing(path, state, checkpoint, strict)
    return restore_into(state, checkpoint, lambda module, value: strategy.load_module_state_dict(module, value, strict))


def save_directory(path: Path, write: Callable[[Path], None], collectives: Collectives, strategy: str) -> None:
    """Write a directory checkpoint at ``path`` from every rank, atomically; every rank must call it.

    Global rank 0 opens a locked staging folder beside ``path`` and shares its name; each rank
    calls ``write(folder)``; once all have, rank 0 writes the manifest (naming ``strategy`` and
    the world size) and swaps the folder in. On failure rank 0 removes the staging folder and
    what was at ``path`` stays as it was.
    """
    from fabric_core.strategies import manifest, staging

    own = staging.begin(path, directory=True) if collectives.is_global_zero else None
    token = collectives.broadcast(own.token if own is not None else None)
    folder = staging.sibling(path, "staging", str(token))
    try:
        collectives.barrier("fabric.save.start")
        write(folder)
        collectives.barrier("fabric.save.written")
        if own is not None:
            manifest.write_manifest(folder, strategy, collectives.world_size)  # last: the save is complete
            own.commit()
    except BaseException:
        if own is not None:
            own.abort()
        raise
    collectives.barrier("fabric.save.done")


def verify_directory(path: Path, collectives: Collectives) -> None:
    """Check ``path`` against its manifest on global rank 0 (which reads every file); raise the same error everywhere.

    Call it before a load reads anything into the user's objects, so a damaged checkpoint
    leaves them untouched. The error carries its attributes (``path``, ``reason``, ``files``)
    on every rank.
    """
    from fabric_core.checkpoint_io import CheckpointError
    from fabric_core.strategies import manifest

    problem: CheckpointError | None = None
    if collectives.is_global_zero:
        try:
            manifest.verify(path)
        except CheckpointError as err:
            problem = err
    problem = collectives.broadcast(problem)  # pickled with its attributes, not its traceback
    if problem is not None:
        raise CheckpointError(str(problem), path=problem.path, reason=problem.reason, files=problem.files)


def warn_if_no_key_matched(path: object, requested: Iterable[str], available: Iterable[str]) -> None:
    """Warn when a ``strict=False`` load finds none of the requested top-level keys: it would restore nothing."""
    requested, available = sorted(requested), sorted(available)
    if requested and not set(requested) & set(available):
        rank_zero_warn(
            f"fabric.load({str(path)!r}, strict=False) restored nothing: none of the requested keys {requested} is in "
            f"the checkpoint, which has {available}. Use the keys the checkpoint was saved with.",
            category=UserWarning,
        )


def warn_if_no_entry_matched(module: object, model_keys: Iterable[str], loaded_keys: Iterable[str]) -> None:
    """Warn when a ``strict=False`` model load matches none of the model's entries: the weights stay as they were."""
    model_keys, loaded_keys = sorted(model_keys), sorted(loaded_keys)
    if model_keys and not set(model_keys) & set(loaded_keys):
        rank_zero_warn(
            f"Loading a state dict into {type(module).__name__} with strict=False matched none of its "
            f"{len(model_keys)} entries, so no weight changed: the model has {_few(model_keys)}, the state dict has "
            f"{_few(loaded_keys)}. Rename the keys (a prefix such as 'module.' added or missing?) or check that the "
            "checkpoint is for this model.",
            category=UserWarning,
        )


def _few(keys: list[str], shown: int = 3) -> str:
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return f"{keys[:shown]}{more}"
