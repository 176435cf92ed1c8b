"""Which rank is blamed for a failed run, and the launchers' error folders (in-process, no run needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fabric_core.strategies.launchers._errors import (
    ERROR_DIR_VARIABLE,
    PreemptedRank,
    RankEnd,
    make_error_dir,
    record_preemption,
    recorded_preemptions,
    root_cause,
)

PEER_LOST = "Traceback ...\nfabric_core.strategies.collectives.CollectiveError: ... (Connection reset by peer)."


def test_a_rank_that_ended_without_an_exception_is_the_cause_even_if_it_was_noticed_late() -> None:
    ends = [RankEnd(0, 10.0, error=PEER_LOST), RankEnd(1, 10.5, code=-9)]
    cause = root_cause(ends)
    assert cause is not None and cause.rank == 1 and cause.how() == "was killed by SIGKILL"


def test_the_earliest_real_exception_wins_over_its_consequences() -> None:
    ends = [
        RankEnd(0, 9.0, error=PEER_LOST),
        RankEnd(1, 9.5, code=1, error="Traceback ...\nValueError: boom"),
        RankEnd(2, 9.8, code=1, error="Traceback ...\nKeyError: 'x'"),
    ]
    cause = root_cause(ends)
    assert cause is not None and cause.rank == 1
    assert cause.how() == "raised an exception (exit code 1)"


def test_a_rank_that_finished_early_is_blamed_for_the_others_waiting() -> None:
    cause = root_cause([RankEnd(0, 5.0, error=PEER_LOST), RankEnd(1, 4.0, code=0)])
    assert cause is not None and cause.rank == 1
    assert cause.how() == "exited with code 0 while the other ranks were still running and waiting for it"
    assert root_cause([RankEnd(1, 4.0, code=0)]) is None  # nothing failed
    assert RankEnd(3, 1.0, code=3).how() == "exited with code 3"


def test_error_folders_of_dead_launchers_are_removed() -> None:
    # A launcher that no longer exists: a process that has exited (its id is free now).
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    base = Path(tempfile.gettempdir())
    stale = base / f"fabric-errors-{dead_pid}-test"
    live = base / f"fabric-errors-{os.getppid()}-test"  # our parent is alive
    legacy = base / "fabric-errors-legacyname"
    for folder in (stale, live, legacy):
        folder.mkdir(exist_ok=True)
    try:
        mine = Path(make_error_dir("fabric-errors-"))
        assert mine.name.startswith(f"fabric-errors-{os.getpid()}-") and mine.is_dir()
        assert not stale.exists()
        assert live.exists() and legacy.exists()  # never another live launcher's, never one it cannot attribute
    finally:
        for folder in (stale, live, legacy, mine):
            if folder.exists():
                folder.rmdir()


def test_an_exit_code_of_128_plus_a_signal_is_named() -> None:
    assert RankEnd(1, 1.0, code=143).how() == "exited with code 143 (128 + SIGTERM: it ended on that signal)"
    assert RankEnd(1, 1.0, code=128).how() == "exited with code 128"


def test_preemption_records_are_read_back_and_a_broken_one_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ERROR_DIR_VARIABLE, raising=False)
    record_preemption(PreemptedRank(0, "SIGTERM", 120, 143))  # no launcher's folder: nothing written, no error
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv(ERROR_DIR_VARIABLE, str(tmp_path))
    record_preemption(PreemptedRank(1, "SIGUSR1", 7, 138))
    (tmp_path / "rank-2.preempted").write_text("{not json")
    assert recorded_preemptions(tmp_path) == {1: PreemptedRank(1, "SIGUSR1", 7, 138)}
