"""The spirals example (examples/train_mlp.py) on DeepSpeed ZeRO stage 2, launched by `fabric run`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fabric_core.environments.local import find_free_port
from fabric_core.testing import clean_environment

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "train_mlp.py"


def _has_run_command() -> bool:
    from fabric_core.cli import build_parser

    commands = next((action for action in build_parser()._actions if action.dest == "command"), None)
    return commands is not None and "run" in getattr(commands, "choices", {})


@pytest.mark.skipif(not _has_run_command(), reason="this fabric-core has no `fabric run` command")
@pytest.mark.skipif(not EXAMPLE.is_file(), reason="examples/train_mlp.py is not here (add-on tested outside the repo)")
def test_spirals_example_on_deepspeed_stage_2_through_fabric_run(tmp_path: Path) -> None:
    def fabric_run(*script_args: str) -> str:
        port = str(find_free_port())
        options = ["--accelerator", "cpu", "--devices", "2", "--strategy", "deepspeed_stage_2", "--main-port", port]
        command = [sys.executable, "-m", "fabric_core", "run", *options, str(EXAMPLE)]
        script = ["--devices", "2", "--strategy", "deepspeed_stage_2", "--samples", "1500", "--root", str(tmp_path)]
        result = subprocess.run(
            [*command, *script, *script_args],
            cwd=tmp_path,
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    output = fabric_run("--epochs", "4")
    accuracy = float(output.strip().splitlines()[-1].split("val accuracy ")[1].split(";")[0])
    assert accuracy > 0.5, output  # three classes: chance is 1/3
    losses = [float(line.split("loss ")[1].split()[0]) for line in output.splitlines() if line.startswith("epoch")]
    assert len(losses) == 4 and losses[-1] < losses[0], output
    checkpoint = tmp_path / "checkpoints" / "last.pt"
    assert checkpoint.is_dir() and (checkpoint / "fabric_deepspeed.json").is_file()  # a DeepSpeed folder

    resumed = fabric_run("--epochs", "5", "--resume")
    assert "resumed from" in resumed and "at epoch 4" in resumed, resumed
    assert resumed.count("val accuracy") == 2  # one epoch left, plus the final line
