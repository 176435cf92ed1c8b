"""Local and remote paths (``s3://``, ``gs://``, ...) through fsspec, Lightning's ``cloud_io``.

fsspec is optional: it is imported only by :func:`get_filesystem`, which raises an
``ImportError`` naming it when it is missing. fabric-core's own checkpoints are local
files written atomically (:mod:`fabric_core.checkpoint_io`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["get_filesystem"]


def get_filesystem(path: str | Path, **kwargs: Any) -> Any:
    """The fsspec file system for ``path`` (local for plain paths, by protocol otherwise).

    :raises ImportError: when fsspec is not installed.
    """
    try:
        import fsspec
    except ImportError as err:
        raise ImportError(
            f"get_filesystem({str(path)!r}) needs fsspec, which is not installed: pip install fsspec (and the "
            "package of the storage you use, such as s3fs or gcsfs)."
        ) from err
    protocol = fsspec.utils.get_protocol(str(path))
    return fsspec.filesystem(protocol, **kwargs)


def _load(path_or_url: str | Path, map_location: Any = None, weights_only: bool = True) -> Any:
    """``torch.load`` from a local path, or from a URL through fsspec."""
    text = str(path_or_url)
    if "://" not in text or text.startswith("file://"):
        return torch.load(text.removeprefix("file://"), map_location=map_location, weights_only=weights_only)
    with get_filesystem(text).open(text, "rb") as handle:
        return torch.load(handle, map_location=map_location, weights_only=weights_only)
