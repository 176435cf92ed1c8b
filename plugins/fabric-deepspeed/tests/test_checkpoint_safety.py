"""A DeepSpeed checkpoint whose client state holds code: refused as fabric-core refuses any other format.

By ``fabric.load`` (with and without a state to restore into) and by ``fabric consolidate``
(the core's command, which hands the folder to this add-on, and the add-on's own
``python -m fabric_deepspeed.cli``): the payload never runs unless the user opts in.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fabric_core.testing import clean_environment, run_script

MALICIOUS_CLIENT_STATE = """
import os
from pathlib import Path
import torch
from torch import nn
from fabric_core import Fabric
from fabric_core.checkpoint_io import UnsafeCheckpointError
from fabric_core.strategies import manifest
from fabric_deepspeed.strategy import DeepSpeedStrategy

fabric = Fabric(accelerator="cpu", devices=1, strategy=DeepSpeedStrategy(stage=2))
fabric.launch()
layer = nn.Linear(4, 4)
model, optimizer = fabric.setup(layer, torch.optim.SGD(layer.parameters(), lr=0.1))
fabric.save("ckpt", {"model": model, "step": 3})

# An attacker rewrites the model-states file: its client state now runs a command when unpickled,
# and the manifest is rewritten to match, so only the unpickler stands in the way.
class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))

states = Path("ckpt/checkpoint/mp_rank_00_model_states.pt")
saved = torch.load(states, weights_only=False)
saved["step"] = Payload()
torch.save(saved, states)
(Path("ckpt") / manifest.MANIFEST_FILE).unlink()
manifest.write_manifest(Path("ckpt"), "deepspeed", 1)

for how, call in (
    ("STATE", lambda: fabric.load("ckpt", {"model": model, "step": 0})),
    ("NO STATE", lambda: fabric.load("ckpt")),
):
    try:
        call()
        print(f"{how}: LOADED", flush=True)
    except UnsafeCheckpointError as err:
        print(f"{how}: {type(err).__name__}: {err}", flush=True)
print("PWNED" if os.path.exists("PWNED") else "SAFE", flush=True)
"""


STATES = "ckpt/checkpoint/mp_rank_00_model_states.pt"
REFUSED = (
    f"Checkpoint {STATES!r} holds a Python object (posix.system) that loading with weights_only=True refuses: "
    "unpickling it could run code. Only tensors, containers and plain values load safely. If you trust the file, "
    "load it with weights_only=False."
)


@pytest.mark.timeout(400)
def test_a_client_state_holding_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    output = run_script(tmp_path, MALICIOUS_CLIENT_STATE).check()
    assert f"STATE: UnsafeCheckpointError: {REFUSED}" in output, output
    assert f"NO STATE: UnsafeCheckpointError: {REFUSED}" in output, output
    assert "SAFE" in output and not (tmp_path / "PWNED").exists()

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *command],
            cwd=tmp_path,
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=240,
        )

    # `fabric consolidate` refuses it the same way, with the flag that opts in.
    result = run("fabric_core", "consolidate", "ckpt", "-o", "weights.pt")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"fabric consolidate: error: {REFUSED} Here: `fabric consolidate --no-weights-only ckpt`." in (
        result.stderr
    ), result.stderr
    result = run("fabric_deepspeed.cli", "consolidate", "ckpt", "-o", "weights.pt")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"fabric-deepspeed consolidate: {REFUSED} Here: --no-weights-only." in result.stderr, result.stderr
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "weights.pt").exists()

    # Opting in unpickles everything, payload included: the flag reaches the add-on.
    result = run("fabric_core", "consolidate", "ckpt", "-o", "weights.pt", "--no-weights-only")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wrote 2 tensors (float32) to weights.pt" in result.stdout
    assert (tmp_path / "PWNED").exists()
