"""Which process this is: the one rank record (``fabric_core._rank``) and the one interactive-session check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fabric_core import _logging
from fabric_core._rank import record_rank
from fabric_core.strategies.launchers import _errors
from fabric_core.strategies.launchers.launcher import is_interactive
from fabric_core.utilities.rank_zero import rank_zero_only
from tests.helpers.processes import ROOT

_CHECK = "from fabric_core.strategies.launchers.launcher import is_interactive; print(is_interactive())"


def test_record_rank_reaches_rank_zero_only_and_the_log_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_logging._context, "rank", None)
    monkeypatch.setitem(_logging._context, "world_size", None)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    before = sys.excepthook
    record_rank(3, 4)
    assert rank_zero_only.rank == 3  # type: ignore[attr-defined]
    assert (_logging._context["rank"], _logging._context["world_size"]) == (3, 4)
    assert sys.excepthook is before  # a single process reports uncaught errors as Python does
    record_rank(1, 2, report_uncaught=True)
    assert getattr(sys.excepthook, "_fabric_rank", None) == 1
    assert rank_zero_only.rank == 1  # type: ignore[attr-defined]


def test_an_uncaught_error_of_a_recorded_rank_names_it_and_leaves_a_record(tmp_path: Path) -> None:
    script = (
        "from fabric_core._rank import record_rank\n"
        "record_rank(1, 2, report_uncaught=True)\n"
        "raise ValueError('boom on purpose')\n"
    )
    env = {"PYTHONPATH": str(ROOT), _errors.ERROR_DIR_VARIABLE: str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 1
    assert "[rank 1] uncaught ValueError:" in run.stderr
    (record,) = _errors.recorded_errors(tmp_path).items()
    assert record[0] == 1 and "boom on purpose" in record[1][1]


def test_is_interactive_tells_a_script_from_an_interactive_session(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    script = tmp_path / "script.py"
    script.write_text(_CHECK + "\n")
    from_script = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert from_script.stdout.strip() == "False", from_script.stderr
    # Code given on the command line, as a notebook kernel runs it: no __main__.__file__.
    from_code = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True, env=env, timeout=120)
    assert from_code.stdout.strip() == "True", from_code.stderr
    # The prompt after `python -i script.py`: __main__ keeps the script's file, but the session is interactive.
    empty = tmp_path / "empty.py"
    empty.write_text("")
    prompt = subprocess.run(
        [sys.executable, "-i", str(empty)], input=_CHECK + "\n", capture_output=True, text=True, env=env, timeout=120
    )
    assert prompt.stdout.strip() == "True", prompt.stderr
    assert is_interactive() is False  # pytest runs from a file
