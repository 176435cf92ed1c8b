"""Telling which rank failed first, and with what.

Each rank of a run launched by fabric-core installs :func:`install_rank_excepthook`: an
uncaught exception is printed with a ``[rank N]`` header and written, with the time it
happened, to ``FABRIC_ERROR_DIR/rank-N.txt``. The launcher that notices a failure reads
the earliest of those files, so the user sees the real error, not the "connection closed
by peer" of the ranks that were waiting for the failed one.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path
from types import TracebackType

ERROR_DIR_VARIABLE = "FABRIC_ERROR_DIR"

#: set when this process had an uncaught exception (its launcher then stops the others at once)
state = {"failed": False}


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


def record_error(rank: int, text: str) -> None:
    folder = os.environ.get(ERROR_DIR_VARIABLE)
    if not folder:
        return
    try:
        path = Path(folder, f"rank-{rank}.txt")
        path.write_text(f"{time.time():.6f}\n{text}", encoding="utf-8")
    except OSError:
        pass  # reporting must never hide the original error


def first_error(folder: str | Path) -> tuple[int, str] | None:
    """``(rank, traceback text)`` of the earliest recorded failure, or ``None``."""
    found = []
    for path in Path(folder).glob("rank-*.txt"):
        try:
            stamp, _, text = path.read_text(encoding="utf-8").partition("\n")
            found.append((float(stamp), int(path.stem.split("-")[1]), text))
        except (OSError, ValueError):
            continue
    if not found:
        return None
    _, rank, text = min(found)
    return rank, text
