"""fabric-deepspeed installs on its own: a fresh virtual environment with torch, the core and the add-on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fabric_core.testing import clean_environment

ROOT = Path(__file__).resolve().parents[3]
ADDON = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(not (ROOT / "fabric_core").is_dir(), reason="fabric-core's source tree is not here")
def test_fresh_venv_install_lists_the_addon(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = clean_environment()
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)

    def run(*command: str | Path, timeout: float = 600) -> str:
        result = subprocess.run(
            [str(part) for part in command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "torch==2.13.0", ROOT, ADDON)

    listing = run(venv / "bin" / "fabric", "plugins")
    assert "fabric-deepspeed 0.1.0  [loaded]  (deepspeed = fabric_deepspeed)" in listing, listing
    assert "strategies: deepspeed, deepspeed_stage_1, deepspeed_stage_1_offload, deepspeed_stage_2" in listing
    # The dependency came along: selecting a DeepSpeed strategy imports deepspeed in the new environment.
    selected = run(
        python,
        "-c",
        "from fabric_core import Fabric; fabric = Fabric(accelerator='cpu', devices=2, strategy='deepspeed_stage_3'); "
        "import deepspeed; print(fabric.strategy.zero_stage, deepspeed.__file__)",
    )
    assert selected.startswith("3 ") and str(venv) in selected, selected
    # No console script of its own: `fabric consolidate` knows DeepSpeed folders through the add-on.
    assert not (venv / "bin" / "fabric-deepspeed").exists()
    assert "deepspeed checkpoints (fabric-deepspeed)" in run(venv / "bin" / "fabric", "consolidate", "--help")
