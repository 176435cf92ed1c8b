"""The kit's environment helpers: a test starts clean, and the processes it starts do not join another run."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from fabric_core.testing import clean_environment, isolated_environment, run_script


def test_isolated_environment_removes_what_would_change_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    leftovers = {
        "FABRIC_PLUGINS": "fabric-x",
        "FABRIC_LOG_FORMAT": "json",
        "FABRIC_STRATEGY": "ddp",
        "LOCAL_RANK": "1",
        "MASTER_PORT": "12910",
        "SLURM_NTASKS": "4",
        "PL_GLOBAL_SEED": "7",
    }
    with monkeypatch.context() as outer:
        for name, value in leftovers.items():
            outer.setenv(name, value)
        with monkeypatch.context() as patch, isolated_environment(patch, autoload=True):
            assert not set(leftovers) & set(os.environ)
            assert "FABRIC_DISABLE_PLUGIN_AUTOLOAD" not in os.environ
        assert all(os.environ[name] == value for name, value in leftovers.items()), "not undone after the test"
        with monkeypatch.context() as patch, isolated_environment(patch, autoload=False):
            assert os.environ["FABRIC_DISABLE_PLUGIN_AUTOLOAD"] == "1"


def test_clean_environment_keeps_the_switches_and_drops_the_launchers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc")
    monkeypatch.setenv("FABRIC_DEVICES", "2")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = clean_environment({"EXTRA": "1"}, LATER="2")
    assert env["FABRIC_DISABLE_PLUGIN_AUTOLOAD"] == "1"
    assert not {"RANK", "TORCHELASTIC_RUN_ID", "FABRIC_DEVICES"} & set(env)
    assert (env["OMP_NUM_THREADS"], env["EXTRA"], env["LATER"]) == ("1", "1", "2")
    assert "OMP_NUM_THREADS" not in clean_environment(omp_threads=None)


_TWO_WRITERS = """
import subprocess, sys
WRITER = "import sys\\nfor i in range(3000):\\n    print('LINE', sys.argv[1], i, 'x' * 40, flush=True)\\n"
writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(n)]) for n in (0, 1)]  # share this stdout
sys.exit(max(writer.wait() for writer in writers))
"""


@pytest.mark.timeout(120)
def test_ranks_printing_at_once_keep_their_lines_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # CI machines often set PYTHONUNBUFFERED=1; then each print() is several writes that another
    # process's output cuts into, and a test reading "RESULT {...}" lines finds them broken.
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    output = run_script(tmp_path, _TWO_WRITERS).check()
    lines = output.splitlines()
    assert len(lines) == 6000
    broken = [line for line in lines if not re.fullmatch(r"LINE [01] \d+ x{40}", line)]
    assert not broken, f"{len(broken)} lines cut by the other writer, e.g. {broken[:3]}"
