"""What the checkpoint paths of every strategy share: choosing the entries a save keeps.

One function for the single-file, sharded and full paths, so a ``filter`` means the same
everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def apply_filter(key: str, values: Any, filter: dict[str, Callable[[str, Any], bool]] | None) -> Any:
    """The entries of ``values`` (the state dict saved under ``key``) that ``filter[key]`` keeps.

    A filter for a plain value (an int, a string, a tensor) leaves it whole, as in Lightning
    Fabric (``fabric.save`` warns about such a filter before saving).
    """
    if filter is None or key not in filter or not isinstance(values, dict):
        return values
    return {name: value for name, value in values.items() if filter[key](name, value)}
