"""Checkpoint and log paths that are URLs (``memory://``, ``file://``, ``s3://``, ...), through fsspec.

fsspec ships with torch. A plain path and a ``file://`` URL are local files: fabric-core
writes them atomically (staging, manifest, recovery). Any other URL is opened through the
fsspec file system of its protocol, which must be installed (``s3fs`` for ``s3://``, ``gcsfs``
for ``gs://``, ``adlfs`` for ``az://``): a file is written in one stream and appears when it
is closed, as the store makes it appear (whole, on object stores); there is no staging copy
and no recovery beside it.

Sharded DCP folders (FSDP, model parallel) are written to URLs through DCP's fsspec storage,
staged and manifested but not atomically: see :mod:`fabric_core.strategies.remote_directory`.
Strategies whose directories are local only (DeepSpeed) refuse URLs with :func:`refuse_remote`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["as_checkpoint_path", "filesystem", "is_remote", "refuse_remote", "shown_url"]

_URL = re.compile(r"^(?P<protocol>[A-Za-z][A-Za-z0-9+.\-]+)://")
#: A URL that went through ``Path()``, which folds its ``//``: ``s3://b/k`` became ``s3:/b/k``.
_FOLDED_URL = re.compile(r"^(?P<protocol>[A-Za-z][A-Za-z0-9+.\-]+):/(?!/)")


def _protocol(path: str | Path) -> str | None:
    """The protocol of a URL (the last of a chain such as ``simplecache::s3://``), else ``None``."""
    if isinstance(path, Path):
        folded = _FOLDED_URL.match(str(path))
        return folded["protocol"].lower() if folded is not None else None
    match = _URL.match(str(path).split("::")[-1])
    return match["protocol"].lower() if match is not None else None


def is_remote(path: str | Path) -> bool:
    """Whether ``path`` is a URL of a file system other than the local one (``file://`` is local)."""
    return _protocol(path) not in (None, "file", "local")


def as_checkpoint_path(path: str | Path) -> str | Path:
    """``path`` as the strategies take it: a :class:`~pathlib.Path` when local (``file://`` too), else the URL.

    A URL stays a string: ``Path()`` would fold its ``//``.
    """
    if isinstance(path, Path):
        return path
    text = str(path)
    if _protocol(text) in ("file", "local") and "::" not in text:
        return Path(text.split("://", 1)[1])
    return text if is_remote(text) else Path(text)


def filesystem(url: str, what: str) -> tuple[Any, str]:
    """The fsspec file system of ``url`` and the path inside it; ``what`` names the call in errors.

    :raises ValueError: the protocol is unknown to fsspec.
    :raises ImportError: the protocol's package is not installed (the message names it).
    """
    import fsspec
    from fsspec.registry import known_implementations

    protocol = _protocol(url) or "file"
    try:
        fs, inner = fsspec.core.url_to_fs(url)
    except ImportError as err:
        package = str(known_implementations.get(protocol, {}).get("class", protocol)).split(".")[0]
        raise ImportError(
            f"{what}: {url!r} is a {protocol}:// URL, whose fsspec file system comes from the package {package!r}, "
            f"which is not installed. Install it (pip install {package}) or use a local path."
        ) from err
    except ValueError as err:
        if "not known" not in str(err).lower():
            raise
        raise ValueError(
            f"{what}: {url!r} uses the protocol {protocol!r}, which fsspec does not know. Use a local path, "
            "file://, memory://, or the protocol of an installed fsspec package (s3:// with s3fs, gs:// with gcsfs, "
            "az:// with adlfs)."
        ) from err
    return fs, str(inner)


def shown_url(path: str | Path) -> str:
    """``path`` as the user wrote it: a URL that ``Path()`` folded (``s3:/b/k``) gets its ``//`` back."""
    return _FOLDED_URL.sub(r"\g<protocol>://", str(path), count=1) if isinstance(path, Path) else str(path)


def refuse_remote(path: str | Path, what: str, instead: str) -> None:
    """Raise when ``path`` is a URL (or one that ``Path()`` folded): ``what`` writes local files only."""
    if is_remote(path):
        shown = shown_url(path)
        raise NotImplementedError(
            f"{what}: {shown!r} is a URL, but this writes and reads local directories only (it stages, verifies "
            f"and recovers them on disk). {instead}"
        )
