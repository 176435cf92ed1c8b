"""Sharded (DCP) checkpoint directories at fsspec URLs: staged, manifested, then copied into place.

Object stores (``s3://``, ``gs://``, ``az://``) have no directory rename and no locks, so
the local swap of :mod:`~fabric_core.strategies.staging` cannot be done there. A save to a
URL instead:

1. writes every rank's files into a hidden staging prefix beside ``url``
   (``.<name>.fabric-staging-<host>-<pid>-<hex>``; DCP through torch's ``FsspecWriter``);
2. once every rank has written, rank 0 writes the manifest into it, last (one PUT): a
   staging prefix with a manifest is a complete checkpoint;
3. rank 0 removes what was at ``url`` (its manifest first), copies the staging files to
   ``url`` (the manifest last) and removes the staging prefix;
4. rank 0 removes every other staging prefix beside ``url`` (leftovers of crashed saves).

**What is not atomic.** Step 3 is many requests. While it runs, ``url`` is missing or holds
a partial checkpoint without its manifest, and the complete new checkpoint is the staging
prefix: a load refuses ``url`` and names that prefix (:func:`refuse_if_incomplete`), which
loads by its own URL. The old checkpoint is gone once step 3 starts. A crash before step 2
leaves ``url`` as it was. Each file appears whole (a store shows an object once its upload
completes), but nothing is fsynced: a file system that is local disk behind fsspec gets no
durability guarantee from this path (use a plain path or ``file://`` there). On an object
store step 3 costs a server-side copy of every byte of the checkpoint.

**One saver per URL.** Without locks nothing tells a live save from a crashed one, so step 4
removes every other staging prefix; two jobs saving to one URL at once is not supported.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.distributed.checkpoint._fsspec_filesystem import FsspecReader, FsspecWriter
from torch.distributed.checkpoint.metadata import Metadata

from fabric_core.checkpoint_io import CheckpointError
from fabric_core.strategies import dcp_reading, manifest, staging
from fabric_core.strategies.checkpoint_state import Collectives
from fabric_core.strategies.manifest import MANIFEST_FILE, checksum_stream
from fabric_core.utilities.remote_paths import filesystem

__all__ = [
    "Location",
    "MetadataReader",
    "check_target",
    "is_sharded_checkpoint",
    "read_metadata",
    "refuse_if_incomplete",
    "save_directory",
    "verify_directory",
    "writer",
]


@dataclass(frozen=True)
class Location:
    """A folder (a prefix) in an fsspec file system: the URL as the user wrote it, and its path inside ``fs``."""

    url: str
    fs: Any
    inner: str

    @classmethod
    def of(cls, url: str, what: str) -> Location:
        """The folder at ``url``; ``what`` names the call in errors (unknown or uninstalled protocols)."""
        url = url.rstrip("/")
        if "::" in url:
            raise ValueError(
                f"{what}: {url!r} is a chained fsspec URL; sharded checkpoints are written to one file system. Use "
                "the store's own URL (s3://bucket/run/ckpt, gs://..., memory://...)."
            )
        fs, inner = filesystem(url, what)
        return cls(url, fs, inner.rstrip("/"))

    def child(self, name: str) -> Location:
        return Location(f"{self.url}/{name}", self.fs, f"{self.inner}/{name}")

    def sibling(self, name: str) -> Location:
        return Location(f"{self.url.rsplit('/', 1)[0]}/{name}", self.fs, posixpath.join(self._parent, name))

    @property
    def name(self) -> str:
        return self.inner.rsplit("/", 1)[-1]

    @property
    def _parent(self) -> str:
        return self.inner.rsplit("/", 1)[0] if "/" in self.inner else ""

    def exists(self) -> bool:
        return bool(self.fs.exists(self.inner))

    def is_dir(self) -> bool:
        return bool(self.fs.isdir(self.inner))

    def files(self) -> dict[str, int]:
        """Every file under this folder, by its path relative to it, with its size."""
        found = self.fs.find(self.inner, detail=True)
        prefix = self.fs._strip_protocol(self.inner).rstrip("/") + "/"
        sizes = {}
        for path, info in found.items():
            path = self.fs._strip_protocol(path)
            if path.startswith(prefix) and info.get("type", "file") == "file":
                sizes[path[len(prefix) :]] = int(info["size"])
        return sizes

    def remove(self) -> None:
        if self.exists():
            self.fs.rm(self.inner, recursive=True)


def writer(url: str) -> FsspecWriter:
    """DCP's fsspec writer for the staging folder at ``url``; no fsync (see the module's notes)."""
    return FsspecWriter(url, sync_files=False)


def is_sharded_checkpoint(url: str) -> bool:
    """Whether ``url`` is a folder holding a DCP ``.metadata`` file."""
    folder = Location.of(url, f"fabric.load({url!r})")
    return bool(folder.fs.isfile(folder.child(dcp_reading.METADATA_FILE).inner))


def check_target(url: str) -> None:
    """Refuse a folder at ``url`` that holds something other than a checkpoint (saving would replace it)."""
    target = Location.of(url, f"fabric.save({url!r}) with a sharded strategy")
    if not target.is_dir() or is_sharded_checkpoint(url) or not target.files():
        return
    if not _complete_copies(target):  # else: the part a save copied in before it died, replaced by this save
        raise IsADirectoryError(
            f"fabric.save({url!r}): this URL is a folder that is not a checkpoint and not empty; saving would "
            "replace it and delete what it holds. Choose another URL, or remove the folder first."
        )


def _one_process_only(url: str, collectives: Collectives, what: str) -> None:
    if url.lower().startswith("memory://") and collectives.world_size > 1:
        raise ValueError(
            f"{what}: {url!r} is in fsspec's memory file system, which lives inside one process; with "
            f"{collectives.world_size} processes each rank would write into its own memory. Use a store that "
            "every rank reaches (a shared path, s3://, gs://, ...)."
        )


def save_directory(url: str, write: Callable[[str], None], collectives: Collectives, strategy: str) -> None:
    """Write a directory checkpoint at ``url`` from every rank (staged, manifest last, copied in); all ranks call it."""
    _one_process_only(url, collectives, f"fabric.save({url!r})")
    target = Location.of(url, f"fabric.save({url!r}) with a sharded strategy")
    token = collectives.broadcast(staging.new_token() if collectives.is_global_zero else None)
    folder = target.sibling(staging.sibling_name(target.name, "staging", str(token)))
    moving = False
    try:
        collectives.barrier("fabric.save.start")
        write(folder.url)
        collectives.barrier("fabric.save.written")
        if collectives.is_global_zero:
            write_manifest(folder, strategy, collectives.world_size)  # last: the staged checkpoint is complete
            moving = True
            _move_into_place(folder, target)
            _remove_leftovers(target)
    except BaseException as err:
        if collectives.is_global_zero and not moving:
            folder.remove()
        if moving and isinstance(err, Exception):
            raise OSError(
                f"fabric.save({url!r}) failed while copying the finished checkpoint into place ({type(err).__name__}: "
                f"{err}). The complete checkpoint is at {folder.url!r}: load it from there, or save again."
            ) from err
        raise
    collectives.barrier("fabric.save.done")


def _move_into_place(folder: Location, target: Location) -> None:
    fs = target.fs
    if target.is_dir():
        marker = target.child(MANIFEST_FILE)
        if fs.exists(marker.inner):
            fs.rm_file(marker.inner)  # first: from here on a load refuses the old folder and names the staged one
        target.remove()
    elif target.exists():
        fs.rm_file(target.inner)  # a full (one-file) checkpoint saved there before
    if os.environ.get(staging.CRASH_BETWEEN_RENAMES) == "1":
        os._exit(137)  # test-only: the crash this module is built to survive
    made: set[str] = set()
    for name in sorted(folder.files(), key=lambda name: (name == MANIFEST_FILE, name)):  # the manifest last
        destination = target.child(name).inner
        parent = posixpath.dirname(destination)
        if parent not in made:
            fs.makedirs(parent, exist_ok=True)
            made.add(parent)
        fs.copy(folder.child(name).inner, destination)
    folder.remove()


def _leftovers(target: Location) -> list[tuple[str, Location]]:
    """The staging (and retired) prefixes beside ``target``, with their tokens."""
    found: list[tuple[str, Location]] = []
    try:
        listing = target.fs.ls(target._parent or "/", detail=False)
    except FileNotFoundError:
        return found  # nothing was ever saved beside it
    for path in listing:
        name = str(path).rstrip("/").rsplit("/", 1)[-1]
        parsed = staging.parse_sibling(name)
        if parsed is not None and parsed[0] == target.name and parsed[1] != "lock":
            found.append((parsed[2], target.sibling(name)))
    return found


def _remove_leftovers(target: Location) -> None:
    for _, location in _leftovers(target):
        location.remove()


def write_manifest(folder: Location, strategy: str, world_size: int) -> None:
    """Record every file now in ``folder`` (sizes and checksums) in one write; the same format as local folders."""
    files = {
        name: {"size": size, "crc32": _checksum(folder.child(name), size)}
        for name, size in sorted(folder.files().items())
        if name != MANIFEST_FILE
    }
    record = manifest.manifest_record(files, strategy, world_size)
    folder.fs.pipe_file(folder.child(MANIFEST_FILE).inner, (json.dumps(record, indent=1) + "\n").encode())


def _checksum(file: Location, size: int) -> str:
    with file.fs.open(file.inner, "rb") as handle:
        return checksum_stream(handle, size)


def _read_manifest(folder: Location) -> dict[str, Any] | None:
    marker = folder.child(MANIFEST_FILE)
    if not folder.fs.isfile(marker.inner):
        return None
    return manifest.parse_manifest(folder.fs.cat_file(marker.inner), folder.url)


def verify(folder: Location) -> None:
    """Check ``folder`` against its manifest; raise :class:`CheckpointError` naming every file that differs."""
    record = _read_manifest(folder)
    if record is None:
        return
    sizes = {name: size for name, size in folder.files().items() if name != MANIFEST_FILE}
    manifest.check_files(folder.url, record["files"], sizes, lambda name: _checksum(folder.child(name), sizes[name]))


def _complete_copies(target: Location) -> list[Location]:
    """The staging prefixes beside ``target`` that hold a manifest, newest first."""
    copies = []
    for _, location in _leftovers(target):
        try:
            record = _read_manifest(location)
        except CheckpointError:
            continue
        if record is not None:
            copies.append((float(record.get("saved_at", 0.0)), location))
    return [location for _, location in sorted(copies, key=lambda item: item[0], reverse=True)]


def _incomplete(url: str) -> CheckpointError | FileNotFoundError | None:
    """Why ``url`` cannot load because a save to it did not finish, else ``None``."""
    target = Location.of(url, f"fabric.load({url!r})")
    if target.exists() and (not target.is_dir() or target.fs.isfile(target.child(MANIFEST_FILE).inner)):
        return None  # a file, or a finished save: loaded (and verified) as usual
    copies = _complete_copies(target)
    if copies:
        state = "holds a partial checkpoint without its manifest" if target.exists() else "is missing"
        return CheckpointError(
            f"fabric.load({url!r}): the checkpoint {state}: a save was interrupted while copying it into place (or "
            f"is copying it right now), and the complete checkpoint it was copying is beside it: {copies[0].url!r}. "
            "Load that URL, or wait for a running save to finish and load again. Nothing was loaded.",
            path=url,
        )
    leftovers = sorted(location.url for _, location in _leftovers(target))
    if not target.exists() and leftovers:
        return FileNotFoundError(
            f"Checkpoint not found at {url!r}. Beside it are leftovers of an interrupted save, none of them complete: "
            f"{leftovers}. Restore the checkpoint from a backup or load an earlier one."
        )
    return None  # missing with nothing beside it, or a folder without a manifest (plain DCP): as usual


def refuse_if_incomplete(url: str, collectives: Collectives) -> None:
    """Before a load: raise on every rank when ``url`` is missing or partial because a save to it did not finish.

    Names the complete staged copy when there is one. Global rank 0 looks; every rank must call it.
    """
    _one_process_only(url, collectives, f"fabric.load({url!r})")
    problem = _incomplete(url) if collectives.is_global_zero else None
    problem = collectives.broadcast(problem)  # pickled with its attributes, not its traceback
    if problem is not None:
        raise problem


def verify_directory(url: str, collectives: Collectives) -> None:
    """Check ``url`` against its manifest on global rank 0; raise the same error on every rank."""
    problem: CheckpointError | None = None
    if collectives.is_global_zero:
        try:
            verify(Location.of(url, f"fabric.load({url!r})"))
        except CheckpointError as err:
            problem = err
    problem = collectives.broadcast(problem)  # pickled with its attributes, not its traceback
    if problem is not None:
        raise CheckpointError(str(problem), path=problem.path, reason=problem.reason, files=problem.files)


def read_metadata(url: str, weights_only: bool) -> Metadata:
    """The DCP ``Metadata`` of the folder at ``url``; under ``weights_only`` nothing in it can run code."""
    folder = Location.of(url, f"fabric.load({url!r})")
    if not weights_only:
        return FsspecReader(url).read_metadata()
    file = folder.child(dcp_reading.METADATA_FILE)
    with folder.fs.open(file.inner, "rb") as handle:
        return dcp_reading.unpickle_metadata(handle, file.url)


class MetadataReader(FsspecReader):
    """DCP's fsspec reader, handed the ``Metadata`` already read by :func:`read_metadata`, so DCP never unpickles it."""

    def __init__(self, url: str, metadata: Metadata) -> None:
        super().__init__(url)
        self._metadata = metadata

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        return self._metadata
