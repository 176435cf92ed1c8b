"""The launchers with real processes: what comes back from the ranks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.processes import run_script

BIG_RESULT = """
from fabric_core import Fabric

def train(fabric):
    return b"x" * 2_000_000  # far more than a pipe holds (64 KiB on Linux)

if __name__ == "__main__":
    fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp_spawn")
    print("RESULT", len(fabric.launch(train)))
"""


@pytest.mark.timeout(120)
def test_ddp_spawn_returns_a_result_larger_than_a_pipe_holds(tmp_path: Path) -> None:
    # Rank 0's put() blocks until the launching process reads it; reading only after every
    # process had ended used to hang the run for ever.
    run = run_script(tmp_path, BIG_RESULT, timeout=90)
    assert run.returncode == 0, run.output
    assert "RESULT 2000000" in run.output
