"""What the checkpoint paths of every strategy share: choosing the entries a save keeps, warning on empty loads.

One function for the single-file, sharded and full paths, so a ``filter`` means the same
everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fabric_core.utilities.rank_zero import rank_zero_warn


def apply_filter(key: str, values: Any, filter: dict[str, Callable[[str, Any], bool]] | None) -> Any:
    """The entries of ``values`` (the state dict saved under ``key``) that ``filter[key]`` keeps.

    A filter for a plain value (an int, a string, a tensor) leaves it whole, as in Lightning
    Fabric (``fabric.save`` warns about such a filter before saving).
    """
    if filter is None or key not in filter or not isinstance(values, dict):
        return values
    return {name: value for name, value in values.items() if filter[key](name, value)}


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
