"""The examples run as users run them (a subprocess each), and they learn."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_mlp.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_train_mlp_learns_logs_and_resumes(tmp_path: Path, precision: str) -> None:
    out = _run("--epochs", "4", "--samples", "1500", "--precision", precision, "--root", str(tmp_path), cwd=tmp_path)
    final = float(out.strip().splitlines()[-1].split("val accuracy ")[1].split(";")[0])
    assert final > 0.8, out
    metrics = tmp_path / "logs" / "spirals" / "version_0" / "metrics.csv"
    rows = list(csv.DictReader(metrics.open()))
    assert {"step", "train/loss", "val/accuracy"} <= set(rows[0])
    assert len([row for row in rows if row["val/accuracy"]]) == 4
    assert (tmp_path / "checkpoints" / "last.pt").is_file()

    resumed = _run(
        "--epochs",
        "5",
        "--samples",
        "1500",
        "--precision",
        precision,
        "--root",
        str(tmp_path),
        "--resume",
        cwd=tmp_path,
    )
    assert "resumed from" in resumed and "at epoch 4" in resumed
    assert resumed.count("val accuracy") == 2  # one epoch left, plus the final line
