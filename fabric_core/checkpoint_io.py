"""Reading and writing checkpoint files: atomic saves, safe loads, clear errors.

Two kinds of unreadable checkpoint get two errors, worded once here and shared by every
format (single files, sharded DCP directories, ``fabric consolidate``):
:class:`UnsafeCheckpointError` for a file that holds Python objects whose unpickling may
run code (refused under ``weights_only=True``), and :class:`CheckpointError` for a file
that is damaged. Both carry what they are about: ``err.path``, ``err.reason`` (one of
:data:`~fabric_core.errors.CheckpointErrorReason`) and, for a directory, ``err.files``.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import pickletools
import re
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fabric_core.errors import CheckpointErrorReason
from fabric_core.utilities.remote_paths import as_checkpoint_path, filesystem

# torch words a refused global in two ways, depending on whether its module is blocked outright.
_REFUSED_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)")
_UNSUPPORTED_OPCODE = re.compile(r"Unsupported operand (\d+)")
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used: it is damaged, holds something other than state, or is unsafe
    to unpickle (:class:`UnsafeCheckpointError`).

    :ivar path: the file or directory the message names: a ``Path`` for a local one, the URL
        (a ``str``) for a remote one; ``None`` when whoever raised it did not say.
    :ivar reason: why, one of :data:`~fabric_core.errors.CheckpointErrorReason` (``"corrupt"``,
        ``"unsafe"``, ``"protocol"``, ``"not-a-dict"``, ``"mismatch"``), or ``None`` when
        whoever raised it did not say.
    :ivar files: for ``"mismatch"``, each file of the directory that differs from its manifest
        (relative, ``/``-separated) and how: ``"missing"``, ``"truncated"``, ``"longer"``,
        ``"changed"`` or ``"foreign"``, in the message's order; else empty.
    """

    def __init__(
        self,
        message: str = "",
        *,
        path: str | Path | None = None,
        reason: CheckpointErrorReason | None = None,
        files: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason
        self.files: dict[str, str] = dict(files or {})


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holds Python objects whose unpickling may run code; refused unless the caller trusts the file.

    :ivar reason: always ``"unsafe"``.
    :ivar refused: the object refused (``"posix.system"``, ``"argparse.Namespace"``), or ``None``.
    :ivar opt_in: the argument that trusts the file and loads it anyway: ``"weights_only=False"``
        (``fabric consolidate --no-weights-only`` on the command line).
    """

    def __init__(
        self,
        message: str = "",
        *,
        path: str | Path | None = None,
        refused: str | None = None,
        opt_in: str = "weights_only=False",
    ) -> None:
        super().__init__(message, path=path, reason="unsafe")
        self.refused = refused
        self.opt_in = opt_in


def holds_code(path: str | Path, what: str) -> UnsafeCheckpointError:
    """The one error for "this file holds code": ``what`` is the object refused."""
    return UnsafeCheckpointError(
        f"Checkpoint {str(path)!r} holds a Python object ({what}) that loading with weights_only=True refuses: "
        "unpickling it could run code. Only tensors, containers and plain values load safely. If you trust the "
        "file, load it with weights_only=False.",
        path=path,
        refused=what,
    )


def damaged(path: str | Path, err: BaseException) -> CheckpointError:
    """The one error for "this file is damaged", with the size of the file and the reader's own reason."""
    size = f" ({Path(path).stat().st_size} bytes)" if Path(path).is_file() else ""
    return CheckpointError(
        f"Checkpoint {str(path)!r}{size} is corrupt or truncated and cannot be read "
        f"({type(err).__name__}: {_first_line(err)}). "
        "Restore it from a backup or load an earlier checkpoint.",
        path=path,
        reason="corrupt",
    )


def refusal(path: str | Path, err: BaseException, data: bytes | None = None) -> CheckpointError:
    """Why torch's weights-only unpickler refused ``path`` (or its pickle ``data``): code, protocol or damage."""
    refused = _REFUSED_GLOBAL.search(str(err))
    if refused is not None:
        return holds_code(path, refused.group(1))
    opcode = _UNSUPPORTED_OPCODE.search(str(err))
    if opcode is None:
        return damaged(path, err)
    # The safe loader reads only the opcodes of pickle protocol 2. Read what the pickle
    # refers to, without running it, to tell a benign newer-protocol file from code.
    data = _pickle_bytes(Path(path)) if data is None else data
    try:
        protocol, references = _pickle_outline(data or b"")
    except ValueError:  # pickletools could not follow the opcodes: the pickle is damaged
        return damaged(path, err)
    foreign = [name for name in references if not name.startswith(("torch.", "collections.OrderedDict"))]
    if foreign:
        return holds_code(path, foreign[0])
    return CheckpointError(
        f"Checkpoint {str(path)!r} was written with pickle protocol {protocol} (torch.save(..., "
        f"pickle_protocol={protocol})), which torch.load(weights_only=True) cannot read: it stops at pickle opcode "
        f"{opcode.group(1)}. This is a limit of torch's safe loader, not damage to the file. If you trust the file, "
        "load it with weights_only=False and save it again with fabric.save (the default protocol), so that it "
        "loads safely from then on.",
        path=path,
        reason="protocol",
    )


def _pickle_bytes(source: Path | io.BytesIO) -> bytes | None:
    """The pickle inside a ``torch.save`` zip archive, or the start of a legacy/plain pickle file."""
    try:
        with zipfile.ZipFile(source) as archive:
            name = next(n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
            return archive.read(name)
    except (zipfile.BadZipFile, StopIteration, OSError):
        if isinstance(source, io.BytesIO):
            return source.getvalue()
        return source.read_bytes() if source.is_file() else None


def _pickle_outline(data: bytes) -> tuple[int, list[str]]:
    """The protocol of a pickle and the globals (``module.name``) it refers to, read without unpickling it."""
    protocol = 0
    found: list[str] = []
    strings: list[Any] = []
    memo: dict[Any, Any] = {}
    last: Any = None  # what the latest opcode pushed, when it was a string (for the memo)
    for opcode, arg, _ in pickletools.genops(data):
        name = opcode.name
        if name == "PROTO":
            protocol = int(arg or 0)
        elif name in ("GLOBAL", "INST"):
            found.append(str(arg).replace(" ", "."))
        elif name == "STACK_GLOBAL" and len(strings) >= 2:
            found.append(f"{strings[-2]}.{strings[-1]}")
        elif name == "MEMOIZE":
            memo[len(memo)] = last
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = last
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            strings.append(memo.get(arg))
        elif isinstance(arg, str) and "UNICODE" in name:
            strings.append(arg)
        if name not in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "FRAME"):
            last = arg if isinstance(arg, str) and "UNICODE" in name else (strings[-1] if "GET" in name else None)
    return protocol, found


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    # torch's weights-only errors start with boilerplate; the cause is on a later line.
    detail = [line for line in lines if not line.startswith(("Weights only load failed", "Please file", "Check the"))]
    return (detail or lines or ["no detail"])[0][:200]


class CheckpointIO:
    """Saves with ``torch.save`` and loads with ``torch.load``.

    A save writes to a hidden staging file beside the target, flushes it to disk and
    renames it over the target, so a crash mid-save leaves the old file or the new one,
    never half of one; the next save removes what crashed saves left behind (see
    :mod:`fabric_core.strategies.staging`). Loads use ``weights_only=True`` unless the
    caller opts out.

    A URL (``memory://``, ``s3://``, ...; see :mod:`fabric_core.utilities.remote_paths`) is
    written and read through fsspec: in one stream, atomic only as far as the store makes a
    closed file appear whole. ``file://`` URLs are local paths.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        """Write ``checkpoint`` to ``path`` atomically.

        :param storage_options: Lightning's argument for remote file systems; plain files
            take none, so anything but ``None`` raises ``TypeError`` (as Lightning's
            ``TorchCheckpointIO`` does).
        """
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__}.save_checkpoint(storage_options={storage_options!r}): writing local files "
                "takes no storage options. Drop the argument, or pass a CheckpointIO of your own that uses them."
            )
        from fabric_core.strategies import staging as staging_  # imports this module: not at the top

        path = as_checkpoint_path(path)
        if not isinstance(path, Path):
            _save_remote(checkpoint, path)
            return
        _check_destination(path)
        staging = staging_.begin(path, directory=False)
        temporary = staging.location
        try:
            _drop_cached(path)
            with open(temporary, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
        except BaseException as err:
            written = temporary.stat().st_size if temporary.exists() else 0
            staging.abort()
            if _is_disk_full(err):
                raise _disk_full(path, checkpoint, written) from err
            raise
        staging.commit()

    def load_checkpoint(
        self, path: str | Path, map_location: Any = "cpu", weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Read the dict saved at ``path``.

        :param weights_only: ``None`` (Lightning's default) means ``True`` here: only
            tensors, containers and plain values are unpickled unless the caller opts out.
        """
        weights_only = True if weights_only is None else weights_only
        path = as_checkpoint_path(path)
        if not isinstance(path, Path):
            return _load_remote(path, map_location, weights_only)
        if not path.exists():
            from fabric_core.strategies.staging import missing_message

            raise FileNotFoundError(missing_message(path))
        if path.is_dir():
            raise IsADirectoryError(
                f"Checkpoint path {str(path)!r} is a directory, but this strategy reads single-file "
                "checkpoints. Point to the file, or load it with the strategy that wrote it."
            )
        return _torch_load(path, path, map_location, weights_only)

    def remove_checkpoint(self, path: str | Path) -> None:
        path = as_checkpoint_path(path)
        if isinstance(path, Path):
            path.unlink(missing_ok=True)
            return
        fs, inner = filesystem(path, f"remove_checkpoint({path!r})")
        if fs.exists(inner):
            fs.rm(inner)

    def teardown(self) -> None:
        """Release resources (nothing for plain files)."""


def _save_remote(checkpoint: dict[str, Any], url: str) -> None:
    """Write ``checkpoint`` to a URL in one stream (no staging: the store decides when the file appears)."""
    fs, inner = filesystem(url, f"fabric.save({url!r})")
    if fs.isdir(inner):
        raise IsADirectoryError(
            f"fabric.save({url!r}): this URL is a directory, and a single-file checkpoint cannot replace it. Save to "
            "a file path under it instead."
        )
    fs.makedirs(fs._parent(inner), exist_ok=True)
    with fs.open(inner, "wb") as file:
        torch.save(checkpoint, file)


def _load_remote(url: str, map_location: Any, weights_only: bool) -> dict[str, Any]:
    fs, inner = filesystem(url, f"fabric.load({url!r})")
    if not fs.exists(inner):
        raise FileNotFoundError(f"Checkpoint file not found: {url!r}. Check the URL.")
    if fs.isdir(inner):
        raise IsADirectoryError(
            f"Checkpoint URL {url!r} is a directory, but this loads single-file checkpoints only. A sharded folder "
            "at a URL loads with strategy='fsdp' or 'model_parallel'; point to the file, or copy any other directory "
            "checkpoint (DeepSpeed) to local disk and load it from there."
        )
    with fs.open(inner, "rb") as file:
        data = io.BytesIO(file.read())  # torch.load needs to seek; a remote stream may not
    return _torch_load(data, url, map_location, weights_only)


def _torch_load(source: Path | io.BytesIO, shown: str | Path, map_location: Any, weights_only: bool) -> dict[str, Any]:
    """``torch.load`` with fabric-core's errors: code, protocol or damage, and "not a dict"."""
    try:
        checkpoint = torch.load(source, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as err:
        if not weights_only:
            raise damaged(shown, err) from err
        raise refusal(shown, err, _pickle_bytes(source)) from err
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError) as err:
        raise damaged(shown, err) from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"Checkpoint {str(shown)!r} holds a {type(checkpoint).__name__}, not a dict of state. "
            "Use fabric.load_raw() for a bare state dict saved with torch.save.",
            path=shown,
            reason="not-a-dict",
        )
    return checkpoint


def _check_destination(path: Path) -> None:
    """Refuse, before writing anything, a file path that cannot hold a checkpoint file."""
    for folder in path.parents:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(
                f"fabric.save({str(path)!r}): {str(folder)!r} is a file, not a directory, so nothing can be saved "
                "under it. Choose another path, or move that file away."
            )
    if path.is_dir():
        entries = sum(1 for _ in path.iterdir())
        held = f"a directory holding {entries} entries" if entries else "an empty directory"
        raise IsADirectoryError(
            f"fabric.save({str(path)!r}): this path is {held}, and a single-file checkpoint cannot replace a "
            f"directory. Save to a file path instead (for example {str(path / 'checkpoint.pt')!r}), or remove the "
            "directory first."
        )


def _drop_cached(path: Path) -> None:
    """Let the kernel drop the cached pages of the checkpoint about to be replaced (they are on disk).

    Measured on ext4 (benchmarks/checkpoint_io.py, 300 MB): writing the staging file while the
    old checkpoint's pages stay cached took over twice as long as ``torch.save`` over the old
    file, which frees them as it truncates it; dropping them first brings the save to within
    about 6% of it. Best effort: nothing happens where the platform or file system cannot.
    """
    if not hasattr(os, "posix_fadvise") or not path.is_file():
        return
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` or an error it chains is "No space left on device" (torch wraps it in a RuntimeError)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _DISK_FULL:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _disk_full(path: Path, checkpoint: Any, written: int) -> OSError:
    tensors = _tensor_bytes(checkpoint)
    free = shutil.disk_usage(path.parent).free
    before = (
        f"The previous checkpoint at {str(path)!r} is intact"
        if path.exists()
        else f"Nothing was written at {str(path)!r}"
    )
    return OSError(
        errno.ENOSPC,
        f"fabric.save({str(path)!r}): No space left on device in {str(path.parent)!r}. The checkpoint needs about "
        f"{_megabytes(tensors)} of tensors; {_megabytes(written)} had been written when the disk filled, and "
        f"{_megabytes(free)} is free now. {before} (the partial file was removed). Free some space or save "
        "elsewhere.",
    )


def _tensor_bytes(value: Any) -> int:
    """The bytes of the tensors in a (nested) checkpoint: what a save must at least write."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(item) for item in value)
    return 0


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"
