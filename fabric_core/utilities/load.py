"""Loading checkpoints lazily: Lightning's ``_lazy_load``, which scripts such as LitGPT
import from this path.

Lightning implements it with its own unpickler; fabric-core uses ``torch.load(mmap=True)``,
which maps the file instead of reading it, so tensors are paged in when first used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def _lazy_load(filename: str | Path, weights_only: bool = True) -> Any:
    """The object saved in ``filename``, its tensors memory-mapped rather than read.

    :raises FileNotFoundError: when ``filename`` does not exist.
    """
    path = Path(filename)
    if not path.is_file():
        raise FileNotFoundError(f"_lazy_load({str(filename)!r}): no such checkpoint file. Check the path.")
    return torch.load(path, mmap=True, weights_only=weights_only, map_location="cpu")


def _materialize_tensors(collection: Any) -> Any:
    """``collection`` with every memory-mapped tensor read into memory."""
    from fabric_core.utilities.apply_func import apply_to_collection

    return apply_to_collection(collection, torch.Tensor, lambda tensor: tensor.clone())
