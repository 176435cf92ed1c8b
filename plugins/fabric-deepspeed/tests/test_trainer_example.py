"""The example trainer (examples/trainer/) on DeepSpeed ZeRO stage 2, two processes, resumed.

The core's suite runs the same trainer on one process, DDP and FSDP
(tests/test_trainer_example.py); this is the DeepSpeed run, which needs the add-on installed.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from fabric_core.testing import clean_environment

ROOT = Path(__file__).resolve().parents[3]
TRAIN = ROOT / "examples" / "trainer" / "train.py"
# 256 samples in batches of 16, two batches per step: 4 steps per epoch on two processes.
SMALL = ("--samples", "256", "--batch-size", "16", "--grad-accum", "2")


def _losses(root: Path, version: int) -> dict[int, float]:
    """The training loss of each step, as the trainer's CSV logger wrote it (rank 0's)."""
    path = root / "logs" / "spirals" / f"version_{version}" / "metrics.csv"
    with path.open(newline="", encoding="utf-8") as file:
        return {int(row["step"]): float(row["train_loss"]) for row in csv.DictReader(file) if row["train_loss"]}


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not TRAIN.is_file(), reason="examples/trainer is not here (add-on tested outside the repo)")
def test_deepspeed_stage_2_two_processes_trains_and_resumes(tmp_path: Path) -> None:
    args = ("--devices", "2", "--strategy", "deepspeed_stage_2", "--scheduler", "cosine", "--checkpoint-every", "2")

    def train(*extra: str) -> str:
        result = subprocess.run(
            [sys.executable, str(TRAIN), "--root", str(tmp_path), *SMALL, *args, *extra],
            cwd=tmp_path,
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        return output

    first = train("--max-steps", "4")
    assert "saving checkpoint step-000004.ckpt at step 4" in first
    second = train("--max-steps", "6", "--resume")
    assert "step-000004.ckpt at step 4 (epoch 0, batch 8)" in second
    assert sorted(_losses(tmp_path, 1)) == [5, 6]
