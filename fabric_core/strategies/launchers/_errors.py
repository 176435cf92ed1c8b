"""Telling which rank failed first, and with what; and which ranks ended through preemption.

Each rank of a run launched by fabric-core installs :func:`install_rank_excepthook`: an
uncaught exception is printed with a ``[rank N]`` header and written, with the time it
happened, to ``FABRIC_ERROR_DIR/rank-N.txt``. The launcher that notices a failure reads
the earliest of those files, so the user sees the real error, not the "connection closed
by peer" of the ranks that were waiting for the failed one.

A rank that :class:`~fabric_core.preemption.Preemption` ends after the checkpoint writes
``FABRIC_ERROR_DIR/rank-N.preempted`` (:func:`record_preemption`): its non-zero exit code
(128 + the signal) is then no failure, and the launcher neither reports it nor stops the
other ranks.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from fabric_core.strategies.launchers.watch import process_alive

ERROR_DIR_VARIABLE = "FABRIC_ERROR_DIR"
_SIGNAL_NUMBERS = {int(sig) for sig in signal.Signals}

#: set when this process had an uncaught exception (its launcher then stops the others at once)
state = {"failed": False}


def track_uncaught_exceptions() -> None:
    """Note in :data:`state` when this process ends with an uncaught exception (for the run's final status).

    Python calls ``sys.excepthook`` before the exit handlers, so Fabric's teardown at exit
    can tell loggers whether the script failed.
    """
    if getattr(sys.excepthook, "_fabric_tracks", False):
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        state["failed"] = True
        previous(kind, value, tb)

    hook._fabric_tracks = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def install_rank_excepthook(rank: int) -> None:
    """Make uncaught exceptions on this rank name the rank and leave a record for the launcher."""
    if getattr(sys.excepthook, "_fabric_rank", None) == rank:
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        text = "".join(traceback.format_exception(kind, value, tb))
        state["failed"] = True
        record_error(rank, text)
        sys.stderr.write(f"[rank {rank}] uncaught {kind.__name__}:\n")
        previous(kind, value, tb)

    hook._fabric_rank = rank  # type: ignore[attr-defined]
    sys.excepthook = hook


def make_error_dir(prefix: str) -> str:
    """A new folder for the ranks' error records, named ``<prefix><pid>-...`` after this launcher.

    A launcher removes its folder when the run ends; one killed outright (SIGKILL) cannot,
    so each new one first removes the folders of launchers that no longer exist.
    """
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        owner = folder.name[len(prefix) :].split("-")[0]
        if owner.isdigit() and int(owner) != os.getpid() and not process_alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")


def record_error(rank: int, text: str) -> None:
    folder = os.environ.get(ERROR_DIR_VARIABLE)
    if not folder:
        return
    try:
        path = Path(folder, f"rank-{rank}.txt")
        path.write_text(f"{time.time():.6f}\n{text}", encoding="utf-8")
    except OSError:
        pass  # reporting must never hide the original error


def recorded_errors(folder: str | Path) -> dict[int, tuple[float, str]]:
    """Global rank to ``(time, traceback)`` of the uncaught exceptions the ranks recorded."""
    found: dict[int, tuple[float, str]] = {}
    for path in Path(folder).glob("rank-*.txt"):
        try:
            stamp, _, text = path.read_text(encoding="utf-8").partition("\n")
            found[int(path.stem.split("-")[1])] = (float(stamp), text)
        except (OSError, ValueError):
            continue
    return found


@dataclass(frozen=True)
class PreemptedRank:
    """A rank that ended through preemption, after the checkpoint callback ran on every rank.

    :param rank: the global rank.
    :param signal: the name of the signal the ranks agreed on (``"SIGTERM"``).
    :param step: the check (optimizer step) at which the callback ran.
    :param code: the exit code it ends with.
    """

    rank: int
    signal: str
    step: int
    code: int


def record_preemption(ended: PreemptedRank) -> None:
    """Leave ``FABRIC_ERROR_DIR/rank-N.preempted`` for the launcher; nothing without a launcher's folder."""
    folder = os.environ.get(ERROR_DIR_VARIABLE)
    if not folder:
        return
    record = {"signal": ended.signal, "step": ended.step, "code": ended.code}
    try:
        Path(folder, f"rank-{ended.rank}.preempted").write_text(json.dumps(record), encoding="utf-8")
    except OSError:
        pass  # the launcher then reports the exit code; the checkpoint exists either way


def recorded_preemptions(folder: str | Path) -> dict[int, PreemptedRank]:
    """Global rank to how it ended, for the ranks that ended through preemption."""
    found: dict[int, PreemptedRank] = {}
    for path in Path(folder).glob("rank-*.preempted"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            rank = int(path.stem.split("-")[1])
            found[rank] = PreemptedRank(rank, str(record["signal"]), int(record["step"]), int(record["code"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


@dataclass(frozen=True)
class RankEnd:
    """How one rank ended, as far as its launcher knows.

    :param rank: the global rank.
    :param time: when it failed: when its process ended, or when it raised (the recorded time).
    :param code: its exit code (negative: killed by that signal); ``None`` while it still runs.
    :param error: the traceback it recorded, if it raised.
    """

    rank: int
    time: float
    code: int | None = None
    error: str | None = None

    def how(self) -> str:
        """How it ended, in words: "was killed by SIGKILL", "exited with code 3", ..."""
        if self.code is not None and self.code < 0:
            try:
                name = signal.Signals(-self.code).name
            except ValueError:
                name = f"signal {-self.code}"
            return f"was killed by {name}"
        if self.error is not None:
            return "raised an exception" if self.code is None else f"raised an exception (exit code {self.code})"
        if self.code == 0:
            return "exited with code 0 while the other ranks were still running and waiting for it"
        if self.code is not None and self.code > 128 and self.code - 128 in _SIGNAL_NUMBERS:
            name = signal.Signals(self.code - 128).name
            return f"exited with code {self.code} (128 + {name}: it ended on that signal)"
        return f"exited with code {self.code}"


#: words in a traceback that mark a failure caused by another rank (its peer went away or never came)
_CONSEQUENCE_WORDS = (
    "collectiveerror",
    "connection reset",
    "connection closed",
    "broken pipe",
    "connection refused",
    "timed out",
    "timeout",
    "distbackenderror",
    "monitoredbarrier",
)


def is_consequence(error: str) -> bool:
    """Whether a recorded traceback is another rank's failure seen from this one (a lost peer, a timeout)."""
    last_lines = "\n".join(error.strip().splitlines()[-3:]).lower()
    return any(word in last_lines for word in _CONSEQUENCE_WORDS)


def root_cause(ends: list[RankEnd]) -> RankEnd | None:
    """The rank whose failure brought the run down, or ``None`` when nothing failed.

    In order: a rank that ended without an uncaught exception (killed by a signal, a
    non-zero exit code), since the others then fail in their collectives with errors that
    are only consequences; else the earliest exception that is not such a consequence;
    else a rank that exited 0 while the others still waited for it; else the earliest
    exception. Times are those of the failures, not of when a launcher noticed them.
    """
    silent = [end for end in ends if end.error is None and end.code not in (None, 0)]
    if silent:
        return min(silent, key=lambda end: (end.time, end.rank))
    raised = [end for end in ends if end.error is not None]
    original = [end for end in raised if not is_consequence(end.error or "")]
    if original:
        return min(original, key=lambda end: (end.time, end.rank))
    finished_early = [end for end in ends if end.code == 0 and end.error is None]
    if raised and finished_early:
        return min(finished_early, key=lambda end: (end.time, end.rank))
    return min(raised, key=lambda end: (end.time, end.rank)) if raised else None
