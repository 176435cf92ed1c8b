"""A DeepSpeed checkpoint whose client state holds code: refused as fabric-core refuses any other format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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


@pytest.mark.timeout(240)
def test_a_client_state_holding_code_is_refused_and_never_runs(run_script: Callable[..., Any], tmp_path: Path) -> None:
    output = run_script(MALICIOUS_CLIENT_STATE).check()
    states = "ckpt/checkpoint/mp_rank_00_model_states.pt"
    expected = (
        f"UnsafeCheckpointError: Checkpoint {states!r} holds a Python object (posix.system) that loading with "
        "weights_only=True refuses: unpickling it could run code. Only tensors, containers and plain values load "
        "safely. If you trust the file, load it with weights_only=False."
    )
    assert f"STATE: {expected}" in output, output
    assert f"NO STATE: {expected}" in output, output
    assert "SAFE" in output and not (tmp_path / "PWNED").exists()
