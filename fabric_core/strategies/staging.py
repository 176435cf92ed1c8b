"""Putting a finished checkpoint in place without a moment where ``path`` holds nothing recoverable.

Every save (a single file, a sharded DCP directory, a DeepSpeed directory) writes into a
hidden *staging* sibling of its final path and then swaps it in. The names tell what each
sibling is::

    .<name>.fabric-lock-<host>-<pid>-<hex>      held (``flock``) by the saving process while it runs
    .<name>.fabric-staging-<host>-<pid>-<hex>   the new checkpoint being written
    .<name>.fabric-retired-<host>-<pid>-<hex>   the old checkpoint, moved aside during the swap

**Liveness.** A save creates and locks its lock file *before* its staging entry and
removes it only after the swap, so an entry is being written exactly when the lock of its
token is held. The kernel drops the lock when the process dies (even by ``SIGKILL``), so a
save never mistakes a live writer for a crashed one, whatever the pid or host.

**The swap.** Replacing a file with a file is one ``os.replace``. Replacing anything else
takes two renames: the old checkpoint to ``retired``, then the staging entry to ``path``.
A crash between them leaves ``path`` missing, with both complete copies beside it; the next
load recovers the newest complete one (:func:`recover`), and the error names them when it
cannot. A staging *directory* counts as complete once its manifest (written last, see
:mod:`fabric_core.strategies.manifest`) is in it; a staging *file* once it is a whole zip
archive (``torch.save``'s format); a retired entry always (it was at ``path``).

**Cleaning.** A failed save removes its own staging (:meth:`Staging.abort`). After each
successful swap the saver removes every sibling whose lock is free (:func:`remove_stale`):
the leftovers of crashed saves. It never touches an entry whose save is alive, and it never
runs while ``path`` is missing, so a recoverable copy is never deleted.

**Test hook.** ``FABRIC_TEST_CRASH_BETWEEN_RENAMES=1`` ends the process with
``os._exit(137)`` between the two renames of a swap. It exists only for the crash tests; do
not set it anywhere else.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import socket
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from fabric_core.strategies.manifest import MANIFEST_FILE, read_saved_at

#: Set to ``1`` only in tests: the process exits between the two renames of a swap.
CRASH_BETWEEN_RENAMES = "FABRIC_TEST_CRASH_BETWEEN_RENAMES"

_SIBLING = re.compile(r"^\.(?P<name>.+)\.fabric-(?P<kind>lock|staging|retired)-(?P<token>[A-Za-z0-9_.-]+)$")


def new_token() -> str:
    """A name for one save, unique across hosts and processes: ``<host>-<pid>-<hex>``."""
    host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:32] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def sibling_name(name: str, kind: str, token: str) -> str:
    """The name of the hidden sibling of the entry ``name`` of this ``kind`` for one save."""
    return f".{name}.fabric-{kind}-{token}"


def parse_sibling(name: str) -> tuple[str, str, str] | None:
    """``(checkpoint name, kind, token)`` of a hidden sibling's ``name``; ``None`` for any other name."""
    match = _SIBLING.match(name)
    return None if match is None else (match["name"], match["kind"], match["token"])


def sibling(path: Path, kind: str, token: str) -> Path:
    """The hidden sibling of ``path`` of this ``kind`` (``lock``, ``staging``, ``retired``) for one save."""
    return path.parent / sibling_name(path.name, kind, token)


@dataclass
class Staging:
    """One save in progress: where it writes, and the lock that tells other processes it is alive.

    Rank 0 creates it with :func:`begin` and shares :attr:`token`; other ranks write into
    ``sibling(path, "staging", token)`` and never touch the lock.
    """

    path: Path
    token: str
    _lock: int | None = field(default=None, repr=False)

    @property
    def location(self) -> Path:
        """Where the save writes: a file or a directory."""
        return sibling(self.path, "staging", self.token)

    def commit(self) -> None:
        """Swap the finished staging entry in at :attr:`path`, then remove crashed saves' leftovers."""
        try:
            replace(self.location, self.path, self.token)
        except BaseException:
            self.abort()
            raise
        self._release()
        remove_stale(self.path)

    def abort(self) -> None:
        """Remove this save's staging entry (the save failed); what is at :attr:`path` stays as it was."""
        _remove(self.location)
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            sibling(self.path, "lock", self.token).unlink(missing_ok=True)
            os.close(self._lock)  # closing drops the flock
            self._lock = None


def begin(path: Path, directory: bool, token: str | None = None) -> Staging:
    """Start a save to ``path``: lock it as alive, then create the staging directory if ``directory``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Staging(path, token or new_token())
    lock = os.open(sibling(path, "lock", staging.token), os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(lock, fcntl.LOCK_EX)
    staging._lock = lock
    if directory:
        staging.location.mkdir()
    return staging


def replace(source: Path, path: Path, token: str) -> None:
    """Move the finished ``source`` to ``path``, replacing what was there (see the module's notes)."""
    if not path.exists() and not path.is_symlink():
        os.replace(source, path)
    elif not source.is_dir() and path.is_file():
        os.replace(source, path)  # one atomic step: no window
    else:
        retired = sibling(path, "retired", token)
        os.replace(path, retired)
        if os.environ.get(CRASH_BETWEEN_RENAMES) == "1":
            os._exit(137)  # test-only: the crash this module is built to survive
        os.replace(source, path)
        _remove(retired)
    _sync_directory(path.parent)


def _sync_directory(folder: Path) -> None:
    """Make the renames durable (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@dataclass(frozen=True)
class Leftover:
    """A hidden sibling of a checkpoint path left by a save: its kind, token and location."""

    kind: str
    token: str
    location: Path


def leftovers(path: Path) -> list[Leftover]:
    """The hidden siblings of ``path`` that saves made (locks, staging and retired entries)."""
    if not path.parent.is_dir():
        return []
    found = []
    for entry in path.parent.iterdir():
        parsed = parse_sibling(entry.name)
        if parsed is not None and parsed[0] == path.name:
            found.append(Leftover(parsed[1], parsed[2], entry))
    return found


def _is_alive(path: Path, token: str) -> bool:
    """Whether the save ``token`` still runs: its lock file is locked by someone."""
    try:
        descriptor = os.open(sibling(path, "lock", token), os.O_RDWR)
    except FileNotFoundError:
        return False  # the lock is created first and removed last: no lock, no live save
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def remove_stale(path: Path) -> list[Path]:
    """Remove the leftovers of saves to ``path`` that are no longer running; return what was removed.

    Does nothing while ``path`` is missing: a leftover may then be the only complete copy.
    """
    if not path.exists():
        return []
    removed = []
    alive: dict[str, bool] = {}
    entries = sorted(leftovers(path), key=lambda entry: entry.kind == "lock")  # locks last
    for entry in entries:
        if alive.setdefault(entry.token, _is_alive(path, entry.token)):
            continue
        _remove(entry.location)
        removed.append(entry.location)
    return removed


def _remove(location: Path) -> None:
    if location.is_dir() and not location.is_symlink():
        shutil.rmtree(location, ignore_errors=True)
    else:
        location.unlink(missing_ok=True)


def complete_copies(path: Path) -> list[Path]:
    """The complete checkpoints beside a missing ``path`` whose saves are not running, newest first."""
    candidates: list[tuple[float, Path]] = []
    for entry in leftovers(path):
        if entry.kind == "lock" or _is_alive(path, entry.token) or not _is_complete(entry):
            continue
        candidates.append((_saved_at(entry.location), entry.location))
    return [location for _, location in sorted(candidates, key=lambda item: item[0], reverse=True)]


def _is_complete(entry: Leftover) -> bool:
    if entry.kind == "retired":
        return True  # it was at the path: a finished save had put it there
    if entry.location.is_dir():
        return (entry.location / MANIFEST_FILE).is_file()
    return zipfile.is_zipfile(entry.location)  # torch.save's archive ends with its directory: whole or not


def _saved_at(location: Path) -> float:
    saved_at = read_saved_at(location) if location.is_dir() else None
    return saved_at if saved_at is not None else location.stat().st_mtime


def recover(path: Path) -> Path | None:
    """Put back the newest complete copy of a missing ``path`` (a crash mid-swap); return where it came from.

    Returns ``None`` when ``path`` exists or nothing beside it can take its place. Only one
    process may call this (rank 0); the others wait for it.
    """
    if path.exists() or path.is_symlink():
        return None
    for location in complete_copies(path):
        try:
            os.replace(location, path)
        except OSError:
            continue  # taken by another process meanwhile; try the next one
        _sync_directory(path.parent)
        return location
    return None


def missing_message(path: Path) -> str:
    """Why a load of a missing ``path`` failed, naming the copies of an interrupted save beside it."""
    found = leftovers(path)
    if not found:
        return f"Checkpoint file not found: {str(path)!r}. Check the path."
    live = sorted({entry.token for entry in found if entry.kind != "lock" and _is_alive(path, entry.token)})
    if live:
        return (
            f"Checkpoint not found at {str(path)!r}: a save to it is running right now (process {live[0]}). Wait for "
            "fabric.save to finish, then load again."
        )
    names = sorted(entry.location.name for entry in found if entry.kind != "lock")
    return (
        f"Checkpoint not found at {str(path)!r}. Beside it are leftovers of an interrupted save, none of them "
        f"complete: {names}. Restore the checkpoint from a backup or load an earlier one."
    )
