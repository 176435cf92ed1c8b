"""``teststore://``: an fsspec file system that behaves like an object store, kept in a local folder.

Every process that calls :func:`register` with the same folder sees the same store, so
ranks started as real processes share it (``memory://`` lives inside one process). Like an
object store it has no rename: ``mv``/``rename`` copy and then delete, file by file.
"""

from __future__ import annotations

import os
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

PROTOCOL = "teststore"
ROOT_VARIABLE = "FABRIC_TEST_STORE"


class ObjectStore(LocalFileSystem):
    """A local folder (``$FABRIC_TEST_STORE``) served under ``teststore://``, with rename as copy + delete."""

    protocol = PROTOCOL

    @classmethod
    def _root(cls) -> str:
        return os.path.realpath(os.environ[ROOT_VARIABLE])

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        path = str(path)
        if path.startswith(f"{PROTOCOL}://"):
            path = path[len(PROTOCOL) + 3 :]
        root = cls._root()
        if path == root or path.startswith(root + "/"):
            return path.rstrip("/") or "/"  # already a path inside the store
        return f"{root}/{path.lstrip('/')}".rstrip("/")

    def mv(self, path1: Any, path2: Any, recursive: bool = False, maxdepth: Any = None, **kwargs: Any) -> None:
        self.copy(path1, path2, recursive=recursive, maxdepth=maxdepth)
        self.rm(path1, recursive=recursive)

    def rename(self, path1: Any, path2: Any, **kwargs: Any) -> None:
        self.mv(path1, path2, **kwargs)

    move = mv


def register(folder: str | os.PathLike[str]) -> None:
    """Serve ``folder`` as ``teststore://`` in this process (call it in every rank's process)."""
    os.environ[ROOT_VARIABLE] = str(folder)
    os.makedirs(folder, exist_ok=True)
    fsspec.register_implementation(PROTOCOL, ObjectStore, clobber=True)
