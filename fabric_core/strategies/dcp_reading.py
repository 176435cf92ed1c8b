"""Reading ``torch.distributed.checkpoint`` (DCP) directories without running code from them.

DCP itself unpickles a directory's ``.metadata`` with plain ``pickle.load`` and its non-tensor
entries (a learning rate, a step count) with ``torch.load(weights_only=False)``, so a hostile
directory runs code on load. Under ``weights_only=True`` (the default) fabric-core instead:

- reads ``.metadata`` once, itself, with an unpickler that builds only the classes DCP's
  ``Metadata`` is made of (its dataclasses, ``torch.Size``, dtypes, layouts, paths), and
  hands that to DCP through :class:`MetadataReader`, so DCP never unpickles it;
- loads each non-tensor entry with ``torch.load(weights_only=True)`` first
  (:class:`SafeLoadPlanner`, :class:`SafeConsolidatePlanner`).

A refusal is :class:`~fabric_core.checkpoint_io.UnsafeCheckpointError`, a damaged file
:class:`~fabric_core.checkpoint_io.CheckpointError`, worded as for single files.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import IO, Any

import torch
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.filesystem import FileSystemReader
from torch.distributed.checkpoint.format_utils import _EmptyStateDictLoadPlanner  # type: ignore[attr-defined]
from torch.distributed.checkpoint.metadata import Metadata
from torch.distributed.checkpoint.planner import ReadItem

from fabric_core.checkpoint_io import CheckpointError, damaged, holds_code, refusal

METADATA_FILE = ".metadata"

_METADATA_MODULE = "torch.distributed.checkpoint.metadata"
_ALLOWED_CLASSES = {
    *(
        (_METADATA_MODULE, name)
        for name in (
            "Metadata",
            "MetadataIndex",
            "StorageMeta",
            "TensorStorageMetadata",
            "BytesStorageMetadata",
            "ChunkStorageMetadata",
            "TensorProperties",
            "_MEM_FORMAT_ENCODING",
        )
    ),
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch.distributed.checkpoint.filesystem", "_StoragePrefix"),
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),  # looks a layout up by name
    ("collections", "OrderedDict"),
    *(("pathlib", name) for name in ("Path", "PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath")),
}


class _Refused(pickle.UnpicklingError):
    """A global outside :data:`_ALLOWED_CLASSES`; carries its ``module.name``."""


class _MetadataUnpickler(pickle.Unpickler):
    """Builds DCP ``Metadata`` and nothing else: any other global is refused before it is looked up."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_CLASSES:
            return super().find_class(module, name)
        value = getattr(torch, name, None) if module == "torch" else None
        if isinstance(value, (torch.dtype, torch.layout, torch.memory_format)):
            return value
        raise _Refused(f"{module}.{name}")


def read_metadata(directory: Path, weights_only: bool) -> Metadata:
    """The DCP ``Metadata`` of ``directory``; under ``weights_only`` nothing in it can run code."""
    path = directory / METADATA_FILE
    if not weights_only:
        return FileSystemReader(directory).read_metadata()
    with path.open("rb") as file:
        return unpickle_metadata(file, path)


def unpickle_metadata(file: IO[bytes], path: str | Path) -> Metadata:
    """DCP ``Metadata`` from the open ``.metadata`` file at ``path`` (local or fsspec), building nothing else."""
    try:
        metadata = _MetadataUnpickler(file).load()
    except _Refused as err:
        raise holds_code(path, str(err)) from err
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise damaged(path, err) from err
    if not isinstance(metadata, Metadata):
        raise damaged(path, TypeError(f"it holds a {type(metadata).__name__}, not DCP Metadata"))
    return metadata


class MetadataReader(FileSystemReader):
    """DCP's file reader, handed the ``Metadata`` already read by :func:`read_metadata`, so DCP never unpickles it."""

    def __init__(self, directory: Path, metadata: Metadata) -> None:
        super().__init__(directory)
        self._metadata = metadata

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        return self._metadata


def _check_bytes(directory: str | Path, value: io.BytesIO) -> None:
    """Refuse a non-tensor DCP entry whose unpickling could run code; leave ``value`` rewound for DCP."""
    try:
        torch.load(value, weights_only=True)
    except pickle.UnpicklingError as err:
        raise refusal(directory, err, data=_bytes_pickle(value)) from err
    except (RuntimeError, EOFError, ValueError) as err:
        raise damaged(directory, err) from err
    value.seek(0)


def _bytes_pickle(value: io.BytesIO) -> bytes | None:
    value.seek(0)
    try:
        with zipfile.ZipFile(value) as archive:
            name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            return archive.read(name)
    except (zipfile.BadZipFile, StopIteration):
        return None


class SafeLoadPlanner(DefaultLoadPlanner):
    """DCP's load planner; under ``weights_only`` non-tensor entries must pass ``torch.load(weights_only=True)``."""

    def __init__(self, directory: str | Path, weights_only: bool, allow_partial_load: bool) -> None:
        super().__init__(allow_partial_load=allow_partial_load)
        self._directory = directory
        self._weights_only = weights_only

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        if self._weights_only:
            _check_bytes(self._directory, value)
        super().load_bytes(read_item, value)


class SafeConsolidatePlanner(_EmptyStateDictLoadPlanner):
    """The planner of ``dcp_to_torch_save`` (builds the whole state from the metadata), with safe non-tensor entries.

    ``_EmptyStateDictLoadPlanner`` is private to torch; Lightning's consolidation uses it too.
    """

    def __init__(self, directory: Path, weights_only: bool) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._directory = directory
        self._weights_only = weights_only

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        if self._weights_only:
            _check_bytes(self._directory, value)
        super().load_bytes(read_item, value)


def checkpoint_error_in(err: CheckpointException) -> CheckpointError | None:
    """The first of our own errors that a rank raised inside DCP (which wraps every rank's failure)."""
    for failure, _ in err.failures.values():
        if isinstance(failure, CheckpointError):
            return failure
    return None
