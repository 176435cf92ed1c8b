"""``teststore://``: an fsspec file system that behaves like an object store, kept in a local folder.

Every process that calls :func:`register` with the same folder sees the same store, so
ranks started as real processes share it (``memory://`` lives inside one process). Like an
object store it has no rename (``mv``/``rename`` copy and then delete, file by file), and a
file written or copied appears whole when it is closed, never in part: it is written
beside the store (``<folder>.uploads``) and moved in at the end.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
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

    def _open(self, path: Any, mode: str = "rb", block_size: Any = None, **kwargs: Any) -> Any:
        if "r" in mode:
            return super()._open(path, mode, block_size, **kwargs)
        path = self._strip_protocol(path)
        self.makedirs(self._parent(path), exist_ok=True)
        return _Upload(path, self._upload_file())

    def cp_file(self, path1: Any, path2: Any, **kwargs: Any) -> None:
        path1, path2 = self._strip_protocol(path1), self._strip_protocol(path2)
        if self.isdir(path1):
            return  # an object store has no folders to copy
        self.makedirs(self._parent(path2), exist_ok=True)
        temporary = self._upload_file()
        shutil.copyfile(path1, temporary)
        os.replace(temporary, path2)

    @classmethod
    def _upload_file(cls) -> str:
        uploads = cls._root() + ".uploads"
        os.makedirs(uploads, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=uploads)
        os.close(handle)
        return name

    def mv(self, path1: Any, path2: Any, recursive: bool = False, maxdepth: Any = None, **kwargs: Any) -> None:
        self.copy(path1, path2, recursive=recursive, maxdepth=maxdepth)
        self.rm(path1, recursive=recursive)

    def rename(self, path1: Any, path2: Any, **kwargs: Any) -> None:
        self.mv(path1, path2, **kwargs)

    move = mv


class _Upload(io.BufferedWriter):
    """A file being uploaded: written beside the store, moved to ``path`` (whole) when closed."""

    def __init__(self, path: str, temporary: str) -> None:
        super().__init__(io.FileIO(temporary, "wb"))
        self._path = path
        self._temporary = temporary

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        os.replace(self._temporary, self._path)


def register(folder: str | os.PathLike[str]) -> None:
    """Serve ``folder`` as ``teststore://`` in this process (call it in every rank's process)."""
    os.environ[ROOT_VARIABLE] = str(folder)
    os.makedirs(folder, exist_ok=True)
    fsspec.register_implementation(PROTOCOL, ObjectStore, clobber=True)
