"""The manifest of a checkpoint directory: what a save wrote, so a load can tell a whole checkpoint from a damaged one.

``fabric_manifest.json`` is written last into a directory checkpoint (sharded DCP or
DeepSpeed), after every rank has finished, so its presence means the save completed; it is
the commit marker of :mod:`fabric_core.strategies.staging`. It records::

    {"format": 1, "fabric_core": "0.1.0", "strategy": "fsdp", "world_size": 2,
     "saved_at": 1719999999.5, "checksum": "crc32 of ...",
     "files": {"__0_0.distcp": {"size": 1234, "crc32": "9a0b1c2d"}, ...}}

Checksums are CRC-32 (``zlib.crc32``) of the whole file when it is small (up to 4 MiB),
else of 16 evenly spaced 64 KiB blocks: about 1 MiB read per file, so a save and a load stay
within a few percent of their time without a manifest. With the sizes they catch truncated,
missing, foreign and swapped files and damage that touches a sampled block; not every
flipped bit in a large file, and not tampering. :func:`verify` runs before a load touches
the user's objects and names each missing, truncated, changed or foreign file. A directory
without a manifest (saved before manifests existed, or by plain DCP/DeepSpeed) still loads,
unverified.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from fabric_core.checkpoint_io import CheckpointError

MANIFEST_FILE = "fabric_manifest.json"
FORMAT = 1
#: How :func:`checksum` reads a file: whole up to this size, else ``_SAMPLES`` evenly spaced blocks.
_WHOLE = 4 * 2**20
_SAMPLES = 16
_BLOCK = 64 * 2**10
CHECKSUM = f"crc32 of the whole file up to {_WHOLE} bytes, else of {_SAMPLES} blocks of {_BLOCK} bytes, first to last"


def checksum(file: Path) -> str:
    """The CRC-32 of ``file`` (8 hex digits): of all of it when small, else of evenly spaced blocks.

    Sampling keeps the cost near 1 MiB read per file whatever its size: a full CRC of a
    300 MB checkpoint added about 20% to a save. With the size recorded too, it still
    catches truncation, swapped or overwritten files and damage that touches a sampled block.
    """
    with open(file, "rb", buffering=0) as handle:
        return checksum_stream(handle, file.stat().st_size)


def checksum_stream(handle: BinaryIO, size: int) -> str:
    """:func:`checksum` of an open, seekable binary file of ``size`` bytes (a local file or an fsspec one)."""
    if size <= _WHOLE:
        return f"{zlib.crc32(handle.read()):08x}"
    value = 0
    last = size - _BLOCK
    for index in range(_SAMPLES):
        handle.seek(last * index // (_SAMPLES - 1))
        value = zlib.crc32(handle.read(_BLOCK), value)
    return f"{value:08x}"


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST_FILE)


def manifest_record(files: dict[str, dict[str, Any]], strategy: str, world_size: int) -> dict[str, Any]:
    """The manifest's content: ``files`` maps each file's relative name to its ``size`` and ``crc32``."""
    from fabric_core import __version__

    return {
        "format": FORMAT,
        "fabric_core": __version__,
        "strategy": strategy,
        "world_size": world_size,
        "saved_at": time.time(),
        "checksum": CHECKSUM,
        "files": files,
    }


def write_manifest(folder: Path, strategy: str, world_size: int) -> None:
    """Record every file now in ``folder`` (sizes and checksums); call it once all ranks have written."""
    files = {
        file.relative_to(folder).as_posix(): {"size": file.stat().st_size, "crc32": checksum(file)}
        for file in _files(folder)
    }
    manifest = manifest_record(files, strategy, world_size)
    temporary = folder / f".{MANIFEST_FILE}.tmp"
    with open(temporary, "w") as handle:
        json.dump(manifest, handle, indent=1)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, folder / MANIFEST_FILE)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of ``folder``, or ``None`` when it has none (an older or foreign checkpoint)."""
    file = folder / MANIFEST_FILE
    if not file.is_file():
        return None
    return parse_manifest(file.read_bytes(), folder)


def parse_manifest(data: bytes, folder: str | Path) -> dict[str, Any]:
    """The manifest read from ``data`` (the manifest file of ``folder``, local or a URL); damaged raises."""
    try:
        manifest = json.loads(data)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise ValueError("no 'files' table")
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"Checkpoint {str(folder)!r} has a damaged {MANIFEST_FILE} ({type(err).__name__}: {err}), so its files "
            "cannot be checked. Restore it from a backup or load an earlier checkpoint.",
            path=folder,
            reason="corrupt",
        ) from err
    return manifest


def read_saved_at(folder: Path) -> float | None:
    """When the checkpoint in ``folder`` was saved, from its manifest; ``None`` without a readable one."""
    try:
        manifest = read_manifest(folder)
    except CheckpointError:
        return None
    saved_at = None if manifest is None else manifest.get("saved_at")
    return float(saved_at) if isinstance(saved_at, (int, float)) else None


def verify(folder: Path) -> None:
    """Check ``folder`` against its manifest; raise :class:`CheckpointError` naming every file that differs.

    A folder without a manifest passes unchecked.
    """
    manifest = read_manifest(folder)
    if manifest is None:
        return
    present = {file.relative_to(folder).as_posix(): file for file in _files(folder)}
    sizes = {name: file.stat().st_size for name, file in present.items()}
    check_files(folder, manifest["files"], sizes, lambda name: checksum(present[name]))


def check_files(
    folder: str | Path, expected: dict[str, dict[str, Any]], sizes: dict[str, int], checksum_of: Callable[[str], str]
) -> None:
    """Compare the files of ``folder`` (relative name: size) with the manifest's ``expected`` table.

    ``checksum_of(name)`` is called only for files whose size matches. Raises
    :class:`CheckpointError` (``reason="mismatch"``) naming every file that differs.
    """
    problems = []
    files: dict[str, str] = {}  # each file named, and how it differs (CheckpointError.files)
    for name, record in sorted(expected.items()):
        size = sizes.get(name)
        if size is None:
            problems.append(f"missing {name!r}")
            files[name] = "missing"
            continue
        if size != record["size"]:
            shape = "truncated" if size < record["size"] else "longer than saved"
            problems.append(f"{shape} {name!r} ({size} of {record['size']} bytes)")
            files[name] = shape.split()[0]
        elif checksum_of(name) != record["crc32"]:
            problems.append(f"changed {name!r} (its checksum differs from the saved one)")
            files[name] = "changed"
    foreign = sorted(set(sizes) - set(expected))
    problems.extend(f"foreign {name!r} (not written by the save)" for name in foreign)
    files.update(dict.fromkeys(foreign, "foreign"))
    if problems:
        raise CheckpointError(
            f"Checkpoint {str(folder)!r} does not match its {MANIFEST_FILE}: {'; '.join(problems)}. Nothing was "
            "loaded. Restore the directory from a backup or load an earlier checkpoint (remove a foreign file if "
            "you put it there).",
            path=folder,
            reason="mismatch",
            files=files,
        )
