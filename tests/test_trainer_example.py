"""The example trainer (examples/trainer/) runs as users run it, on each strategy, and resumes exactly.

Each run is a real ``python examples/trainer/train.py ...`` process (two processes for
DDP and FSDP, started by ``fabric.launch()``; the DeepSpeed run is in the add-on's suite,
plugins/fabric-deepspeed/tests/test_trainer_example.py), a few steps long. A resumed run
must log the same losses as a run that never stopped: model, optimizer, scheduler and the
position in the data all come back from the checkpoint.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "examples" / "trainer" / "train.py"

# 256 samples in batches of 16, two batches per step: 8 steps per epoch on one process, 4 on two.
SMALL = ("--samples", "256", "--batch-size", "16", "--grad-accum", "2")


def _train(root: Path, *args: str) -> str:
    """Run train.py with ``root`` for logs and checkpoints; its output (stdout and stderr)."""
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FABRIC_DISABLE_PLUGIN_AUTOLOAD": "1"}
    for variable in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR", "NODE_RANK", "GROUP_RANK"):
        env.pop(variable, None)
    result = subprocess.run(
        [sys.executable, str(TRAIN), "--root", str(root), *SMALL, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def _losses(root: Path, version: int = 0) -> dict[int, float]:
    """The training loss of each step, as the CSV logger wrote it (rank 0's)."""
    path = root / "logs" / "spirals" / f"version_{version}" / "metrics.csv"
    with path.open(newline="", encoding="utf-8") as file:
        return {int(row["step"]): float(row["train_loss"]) for row in csv.DictReader(file) if row["train_loss"]}


def _assert_resume_is_exact(tmp_path: Path, *args: str, stop_at: int, steps: int) -> tuple[str, str, str]:
    """Train ``steps`` steps at once, and ``stop_at`` then the rest after a resume; the losses must agree."""
    whole = _train(tmp_path / "whole", "--max-steps", str(steps), *args)
    first = _train(tmp_path / "parts", "--max-steps", str(stop_at), *args)
    second = _train(tmp_path / "parts", "--max-steps", str(steps), "--resume", *args)
    expected = _losses(tmp_path / "whole")
    before, after = _losses(tmp_path / "parts", 0), _losses(tmp_path / "parts", 1)
    assert sorted(expected) == list(range(1, steps + 1))
    assert sorted(before) == list(range(1, stop_at + 1))
    assert sorted(after) == list(range(stop_at + 1, steps + 1))
    for step, loss in {**before, **after}.items():
        assert loss == pytest.approx(expected[step], abs=1e-6, rel=0), f"step {step}"
    return whole, first, second


@pytest.mark.timeout(200)
def test_one_process_trains_logs_and_resumes_exactly(tmp_path: Path) -> None:
    args = ("--scheduler", "cosine", "--val-every", "4", "--checkpoint-every", "3")
    whole, first, second = _assert_resume_is_exact(tmp_path, *args, stop_at=5, steps=10)

    losses = _losses(tmp_path / "whole")
    assert losses[10] < losses[1]  # it learns
    with (tmp_path / "whole" / "logs" / "spirals" / "version_0" / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    learning_rates = [float(row["lr"]) for row in rows if row["lr"]]
    assert learning_rates[0] < 3e-3 and learning_rates == sorted(learning_rates, reverse=True)  # stepped per step
    assert [int(row["step"]) for row in rows if row["val_loss"]] == [4, 8]

    # the progress bar (plain lines: the output is a pipe), validation, the event-hook callback
    assert "\r" not in whole
    assert [line.split("  ")[0] for line in whole.splitlines() if line.startswith("step ")] == ["step 10/10"]
    assert "validation at step 4: val_loss=" in whole
    assert "saving checkpoint step-000003.ckpt at step 3" in whole
    assert sorted(path.name for path in (tmp_path / "whole" / "checkpoints").iterdir()) == [
        "step-000003.ckpt",
        "step-000006.ckpt",
        "step-000009.ckpt",
        "step-000010.ckpt",
    ]
    assert "saving checkpoint step-000005.ckpt at step 5" in first  # the end of a run is saved too
    assert "resumed from" in second and "step-000005.ckpt at step 5 (epoch 0, batch 10)" in second


@pytest.mark.timeout(240)
def test_two_process_ddp_resumes_exactly_across_an_epoch(tmp_path: Path) -> None:
    args = ("--devices", "2", "--strategy", "ddp", "--scheduler", "plateau", "--val-every", "2")
    args += ("--checkpoint-every", "3")
    whole, _, second = _assert_resume_is_exact(tmp_path, *args, stop_at=6, steps=10)
    assert "step-000006.ckpt at step 6 (epoch 1, batch 4)" in second  # in the middle of the second epoch
    # only rank 0 prints: one progress line, one line per validation
    assert next(line for line in whole.splitlines() if line.startswith("step ")).startswith("step 10/10  ")
    assert sum(line.startswith("step ") for line in whole.splitlines()) == 1
    assert whole.count("validation at step 2:") == 1


@pytest.mark.timeout(200)
def test_fsdp_two_processes_trains_and_resumes(tmp_path: Path) -> None:
    args = ("--devices", "2", "--strategy", "fsdp", "--scheduler", "step", "--checkpoint-every", "3")
    first = _train(tmp_path, "--max-steps", "6", *args)
    assert "done at step 6 (epoch 1)" in first  # 4 steps per epoch: validated after the first
    assert "validation at step 4: val_loss=" in first
    second = _train(tmp_path, "--max-steps", "8", "--resume", *args)
    assert "step-000006.ckpt at step 6 (epoch 1, batch 4)" in second
    assert "done at step 8 (epoch 2)" in second
    assert (tmp_path / "checkpoints" / "step-000008.ckpt").exists()
    assert sorted(_losses(tmp_path, 1)) == [7, 8]


def test_the_trainer_needs_a_limit() -> None:
    sys.path.insert(0, str(TRAIN.parent))
    try:
        from trainer import Trainer  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(TRAIN.parent))
    with pytest.raises(ValueError, match=r"Trainer\(max_epochs=None, max_steps=None\) would never stop"):
        Trainer(accelerator="cpu")
