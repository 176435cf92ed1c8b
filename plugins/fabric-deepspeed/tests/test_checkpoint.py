"""fabric.save / fabric.load through DeepSpeed's engines, another world size, and `fabric-deepspeed consolidate`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fabric_core.testing import clean_environment, run_script

ROUND_TRIP = """
import sys
import torch
from torch import nn
from fabric_core import Fabric
from fabric_deepspeed.strategy import DeepSpeedStrategy

STAGE = int(sys.argv[1])
fabric = Fabric(accelerator="cpu", devices=2, strategy=DeepSpeedStrategy(stage=STAGE))
fabric.launch()
rank = fabric.global_rank

class Note:  # pickled as an arbitrary object: weights_only=True must refuse it
    def __init__(self, text):
        self.text = text

def make():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    model, optimizer = fabric.setup(model, optimizer)
    return model, optimizer, scheduler

def train(model, optimizer, scheduler, start, steps=10):
    losses = []
    for step in range(start, start + steps):
        generator = torch.Generator().manual_seed(1000 * step + rank)
        inputs, targets = torch.randn(16, 8, generator=generator), torch.randn(16, 2, generator=generator)
        loss = nn.functional.mse_loss(model(inputs), targets)
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        losses.append(loss.item())
    return losses

def full_weights(model):
    if fabric.strategy.zero_stage_3:
        import deepspeed
        with deepspeed.zero.GatheredParameters(list(model.parameters())):
            return {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {k: v.detach().clone() for k, v in model.state_dict().items()}

model, optimizer, scheduler = make()
train(model, optimizer, scheduler, 0)
fabric.save("checkpoint", {"model": model, "optimizer": optimizer, "scheduler": scheduler, "step": 10, "note": "hi"})
weights = full_weights(model)
if rank == 0:
    torch.save(weights, "reference.pt")
uninterrupted = train(model, optimizer, scheduler, 10)

# A user key that DeepSpeed uses itself is refused, before anything is written.
try:
    fabric.save("refused", {"model": model, "global_steps": 3})
    raise AssertionError("not refused")
except ValueError as err:
    assert "'global_steps'" in str(err) and "Rename them" in str(err), err
import os
assert not os.path.exists("refused")

# Load into a fresh engine and continue: the same losses as the uninterrupted run.
model2, optimizer2, scheduler2 = make()
state = {"model": model2, "optimizer": optimizer2, "scheduler": scheduler2, "step": 0}
remainder = fabric.load("checkpoint", state)
assert state["step"] == 10 and remainder == {"note": "hi"}, (state["step"], remainder)
assert scheduler2.last_epoch == 10
resumed = train(model2, optimizer2, scheduler2, 10)
assert resumed == uninterrupted, (resumed, uninterrupted)
everything = fabric.load("checkpoint")  # no state: the user's part of the checkpoint, as saved
assert sorted(everything) == ["note", "scheduler", "step"] and everything["scheduler"]["last_epoch"] == 10

# Saving over an existing checkpoint replaces it whole; arbitrary objects need weights_only=False.
fabric.save("checkpoint-2", {"model": model2, "note": Note("pickled")})
fabric.save("checkpoint-2", {"model": model2, "note": Note("replaced")})
try:
    fabric.load("checkpoint-2", {"model": model2}, strict=False)
    raise AssertionError("not refused")
except RuntimeError as err:
    assert "weights_only=True refuses" in str(err) and "Note" in str(err), err
assert fabric.load("checkpoint-2", {"model": model2}, weights_only=False)["note"].text == "replaced"

# Full weights from one file into a model already set up (load_raw): stages 0-2; stage 3 is refused.
fabric.barrier()  # reference.pt is written
if fabric.strategy.zero_stage_3:
    try:
        fabric.load_raw("reference.pt", model2)
        raise AssertionError("not refused")
    except NotImplementedError as err:
        assert "ZeRO stage 3" in str(err) and "before fabric.setup()" in str(err), err
else:
    fabric.load_raw("reference.pt", model2)
    for group in optimizer2.param_groups:
        group["lr"] = 0.0
    train(model2, optimizer2, scheduler2, 30, steps=1)  # a step that changes nothing keeps the loaded weights
    loaded = full_weights(model2)  # (it would bring back the old ones if the fp32 master copy were stale)
    for key, value in weights.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
print(f"ROUND TRIP OK rank {rank}: {uninterrupted[-1]:.6f} == {resumed[-1]:.6f}", flush=True)
"""

ONE_PROCESS = """
import sys
import torch
from torch import nn
from fabric_core import Fabric
from fabric_deepspeed.strategy import DeepSpeedStrategy

fabric = Fabric(accelerator="cpu", devices=1, strategy=DeepSpeedStrategy(stage=int(sys.argv[1])))
fabric.launch()
torch.manual_seed(1)  # other initial weights than the saved ones
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
model, optimizer = fabric.setup(model, torch.optim.Adam(model.parameters(), lr=1e-2))
try:
    fabric.load("checkpoint", {"model": model, "optimizer": optimizer}, strict=False)
    print("LOADED WITH OPTIMIZER", flush=True)
except RuntimeError as err:
    print("OPTIMIZER REFUSED:", err, flush=True)
    fabric.load("checkpoint", {"model": model}, strict=False)
    print("LOADED WEIGHTS", flush=True)
reference = torch.load("reference.pt", weights_only=True)
if fabric.strategy.zero_stage_3:
    import deepspeed
    with deepspeed.zero.GatheredParameters(list(model.parameters())):
        got = {k: v.detach().clone() for k, v in model.state_dict().items()}
else:
    got = model.state_dict()
for key in reference:
    torch.testing.assert_close(got[key], reference[key], rtol=0, atol=0)
fabric.backward(model(torch.randn(4, 8)).sum())
optimizer.step()
print("ONE PROCESS OK", flush=True)
"""


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_round_trip_other_world_size_and_consolidation(tmp_path: Path, stage: int) -> None:
    output = run_script(tmp_path, ROUND_TRIP, str(stage)).check()
    assert "ROUND TRIP OK rank 0" in output and "ROUND TRIP OK rank 1" in output
    folder = tmp_path / "checkpoint"
    assert (folder / "fabric_deepspeed.json").is_file() and (folder / "checkpoint").is_dir()
    assert not list(tmp_path.glob(".checkpoint*"))  # no partial folders left behind

    # Load at world size 1. Found: with ZeRO off (stage 0) everything loads, optimizer included;
    # with ZeRO (stages 1-3) DeepSpeed cannot re-partition the optimizer state for another world
    # size, which is refused with a clear error, and the weights alone load.
    output = run_script(tmp_path, ONE_PROCESS, str(stage)).check()
    assert "ONE PROCESS OK" in output
    if stage == 0:
        assert "LOADED WITH OPTIMIZER" in output
    else:
        assert (
            "OPTIMIZER REFUSED: fabric.load('checkpoint'): the checkpoint was written by 2 processes and this run "
            "has 1" in output
        )
        assert "Leave the optimizer out of the state" in output and "LOADED WEIGHTS" in output

    # One consolidated fp32 state dict, loadable with weights_only=True, equal to the trained weights.
    target = tmp_path / "consolidated" / "model.pt"
    result = subprocess.run(
        [sys.executable, "-m", "fabric_deepspeed.cli", "consolidate", str(folder), "-o", str(target)],
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"wrote 4 tensors (float32) to {target}" in result.stdout
    consolidated = torch.load(target, weights_only=True)
    reference = torch.load(tmp_path / "reference.pt", weights_only=True)
    assert list(consolidated) == list(reference)
    for key, value in reference.items():
        assert consolidated[key].dtype is torch.float32
        torch.testing.assert_close(consolidated[key], value, rtol=0, atol=0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    model.load_state_dict(consolidated)


def test_consolidate_explains_what_is_wrong(tmp_path: Path) -> None:
    def consolidate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fabric_deepspeed.cli", "consolidate", *args],
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    result = consolidate(str(tmp_path / "missing"), "-o", str(tmp_path / "out.pt"))
    assert result.returncode == 1 and "is not a folder; pass the folder that fabric.save() wrote" in result.stderr
    result = consolidate(str(tmp_path), "-o", str(tmp_path / "out.pt"))
    assert result.returncode == 1 and "not a DeepSpeed checkpoint" in result.stderr
