"""FSDP2 with real processes on CPU (gloo): parity with DDP, precision, setup orders, sharded checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fabric_core import Fabric
from fabric_core.strategies import sharded_checkpoint
from fabric_core.strategies.fsdp import FSDPStrategy
from tests.helpers.fsdp_scripts import MODEL_AND_DATA
from tests.helpers.processes import run_script

COMMON = (
    MODEL_AND_DATA
    + """
def train(fabric, model, optimizer, data):
    losses = []
    for x, y in data:
        loss = nn.functional.mse_loss(model(x), y)
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses
"""
)

PARITY = (
    COMMON
    + """
from torch.nn.parallel import DistributedDataParallel
precision = sys.argv[1]
strategy = FSDPStrategy(auto_wrap_policy={Block}, activation_checkpointing_policy={Block})
fabric = Fabric(accelerator="cpu", devices=2, strategy=strategy, precision=precision)
fabric.launch()
data = batches(100 + fabric.global_rank, 50)

model = make_model()
model, optimizer = fabric.setup(model, torch.optim.Adam(model.parameters(), lr=1e-2))
losses = train(fabric, model, optimizer, data)
full = fabric.strategy.get_module_state_dict(model.module)  # gathered on rank 0 only
if fabric.global_rank == 0:
    assert list(full) == list(make_model().state_dict()), list(full)  # no wrapper prefixes
local = [p for p in model.parameters()]
assert all(type(p).__name__ == "DTensor" for p in local) and local[0].to_local().shape[0] == 8  # really sharded

if precision == "32-true":
    raw = DistributedDataParallel(make_model())
    raw_optimizer = torch.optim.Adam(raw.parameters(), lr=1e-2)
    for x, y in data:
        nn.functional.mse_loss(raw(x), y).backward()
        raw_optimizer.step()
        raw_optimizer.zero_grad()
    if fabric.global_rank == 0:
        for (name, expected), actual in zip(raw.module.state_dict().items(), full.values(), strict=True):
            torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6, msg=name)
else:
    fixed = batches(7, 1) * 30  # one batch again and again: the loss must fall
    fixed_losses = train(fabric, model, optimizer, fixed)
    assert fixed_losses[-1] < 0.5 * fixed_losses[0], fixed_losses
print(f"FSDP OK rank {fabric.global_rank} {precision}", flush=True)
"""
)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_fsdp_matches_ddp_and_trains_in_bf16(tmp_path: Path, precision: str) -> None:
    run = run_script(tmp_path, PARITY, precision)
    assert run.returncode == 0, run.output
    assert f"FSDP OK rank 0 {precision}" in run.output and f"FSDP OK rank 1 {precision}" in run.output


RESHARD = (
    COMMON
    + """
mode, devices = sys.argv[1], int(sys.argv[2])
fabric = Fabric(accelerator="cpu", devices=devices, strategy=FSDPStrategy(auto_wrap_policy={Block}))
fabric.launch()
# Every rank trains on the same full batch, so the run is the same at any world size.
data = batches(5, 15)
model = make_model()
model, optimizer = fabric.setup(model, torch.optim.Adam(model.parameters(), lr=1e-2))
head = nn.Linear(2, 2)
head, head_optimizer = fabric.setup(head, torch.optim.SGD(head.parameters(), lr=0.1))
if mode == "save":
    train(fabric, model, optimizer, data[:10])
    fabric.save("ckpt", {"model": model, "optimizer": optimizer, "head": head, "step": 10, "note": "hello"})
    losses = train(fabric, model, optimizer, data[10:])
else:
    state = {"model": model, "optimizer": optimizer, "head": head, "step": 0}
    rest = fabric.load("ckpt", state)
    assert state["step"] == 10 and rest == {"note": "hello"}, (state["step"], rest)
    losses = train(fabric, model, optimizer, data[10:])
    if mode == "load-lenient":
        extra = {"model": model, "not_saved": 1}
        fabric.load("ckpt", extra, strict=False)
        assert extra["not_saved"] == 1
        try:
            fabric.load("ckpt", {"model": model, "not_saved": 1})
        except KeyError as err:
            assert "not_saved" in str(err) and "strict=False" in str(err)
        else:
            raise AssertionError("strict load did not complain")
if fabric.global_rank == 0:
    print("LOSSES " + json.dumps(losses), flush=True)
"""
)


def _losses(output: str) -> list[float]:
    line = next(line for line in output.splitlines() if line.startswith("LOSSES "))
    return json.loads(line[len("LOSSES ") :])  # type: ignore[no-any-return]


def test_sharded_checkpoint_saved_on_2_loads_on_1_and_3_and_continues_identically(tmp_path: Path) -> None:
    saved = run_script(tmp_path, RESHARD, "save", "2")
    assert saved.returncode == 0, saved.output
    assert (tmp_path / "ckpt" / ".metadata").is_file() and (tmp_path / "ckpt" / "fabric_meta.pt").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ckpt")]  # no staging folder left
    uninterrupted = _losses(saved.output)
    for devices, mode in (("1", "load"), ("3", "load-lenient")):
        resumed = run_script(tmp_path, RESHARD, mode, devices)
        assert resumed.returncode == 0, resumed.output
        torch.testing.assert_close(_losses(resumed.output), uninterrupted, rtol=1e-5, atol=1e-7)

    # `fabric consolidate`'s work: one file that plain torch.load(weights_only=True) reads.
    output = tmp_path / "consolidated.pt"
    sharded_checkpoint.consolidate(tmp_path / "ckpt", output)
    consolidated = torch.load(output, weights_only=True)
    assert consolidated["step"] == 10 and consolidated["note"] == "hello"
    assert consolidated["model"]["0.weight"].shape == (16, 8)
    assert set(consolidated["head"]) == {"weight", "bias"}


FULL_AND_SETUP_ORDERS = (
    COMMON
    + """
fabric = Fabric(accelerator="cpu", devices=2, strategy=FSDPStrategy(state_dict_type="full"))
fabric.launch()
# setup_module first, optimizer made from the sharded parameters afterwards.
with fabric.init_module(empty_init=True):
    model = make_model()
assert model[0].weight.is_meta
model = fabric.setup_module(model)
assert not any(p.is_meta for p in model.parameters())
optimizer = fabric.setup_optimizers(torch.optim.SGD(model.parameters(), lr=0.1))
data = batches(3, 4)
with fabric.no_backward_sync(model):
    fabric.backward(nn.functional.mse_loss(model(data[0][0]), data[0][1]))
fabric.backward(nn.functional.mse_loss(model(data[1][0]), data[1][1]))
norm = fabric.clip_gradients(model, optimizer, max_norm=0.01)
assert norm.dim() == 0 and norm > 0.01
optimizer.step()
optimizer.zero_grad()

fabric.save("full.pt", {"model": model, "optimizer": optimizer, "epoch": 3})
checkpoint = torch.load("full.pt", weights_only=True)
assert set(checkpoint) == {"model", "optimizer", "epoch"} and checkpoint["model"]["0.weight"].shape == (16, 8)
other = fabric.setup_module(make_model())
other_optimizer = fabric.setup_optimizers(torch.optim.SGD(other.parameters(), lr=0.1))
state = {"model": other, "optimizer": other_optimizer, "epoch": 0}
fabric.load("full.pt", state)
assert state["epoch"] == 3
x = data[2][0]
assert torch.equal(other(x), model(x))

# A plain torch.save file loads into a sharded model.
if fabric.global_rank == 0:
    torch.save(make_model().state_dict(), "raw.pt")
fabric.barrier()
fabric.load_raw("raw.pt", other)
reloaded = fabric.strategy.get_module_state_dict(other.module)
if fabric.global_rank == 0:
    assert torch.equal(reloaded["0.weight"], make_model()[0].weight)

# A model and an optimizer stepped before setup cannot follow into the shards.
stepped = make_model()
stepped_optimizer = torch.optim.Adam(stepped.parameters())
stepped(torch.ones(1, 8)).sum().backward()
stepped_optimizer.step()
try:
    fabric.setup(stepped, stepped_optimizer)
except RuntimeError as err:
    assert "has already stepped" in str(err)
else:
    raise AssertionError("a stepped optimizer was accepted")
print(f"SETUP OK rank {fabric.global_rank}", flush=True)
"""
)


def test_setup_orders_empty_init_full_checkpoints_and_load_raw(tmp_path: Path) -> None:
    run = run_script(tmp_path, FULL_AND_SETUP_ORDERS)
    assert run.returncode == 0, run.output
    assert "SETUP OK rank 0" in run.output and "SETUP OK rank 1" in run.output


def test_fsdp_names_and_arguments() -> None:
    fabric = Fabric(accelerator="cpu", devices=2, strategy="fsdp_cpu_offload")
    assert isinstance(fabric.strategy, FSDPStrategy) and fabric.strategy.cpu_offload
    assert isinstance(Fabric(accelerator="cpu", devices=2, strategy="fsdp").strategy, FSDPStrategy)
    with pytest.raises(ValueError, match="sharding_strategy='HALF'"):
        FSDPStrategy(sharding_strategy="HALF")
    with pytest.raises(ValueError, match="state_dict_type='zip'"):
        FSDPStrategy(state_dict_type="zip")
    with pytest.raises(TypeError, match="auto_wrap_policy=.*expected a set of nn.Module classes"):
        FSDPStrategy(auto_wrap_policy={int})
    with pytest.raises(TypeError, match=r"unknown arguments \['bogus'\]"):
        FSDPStrategy(bogus=1)


def test_consolidate_refuses_what_is_not_a_sharded_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="is not a sharded checkpoint directory"):
        sharded_checkpoint.consolidate(tmp_path, tmp_path / "out.pt")


def test_fabric_consolidate_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    saved = run_script(tmp_path, RESHARD, "save", "2")
    assert saved.returncode == 0, saved.output
    command = [
        sys.executable,
        "-m",
        "fabric_core",
        "consolidate",
        str(tmp_path / "ckpt"),
        "-o",
        str(tmp_path / "one.pt"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    consolidated = torch.load(tmp_path / "one.pt", weights_only=True)
    assert consolidated["step"] == 10 and set(consolidated) == {"model", "optimizer", "head", "step", "note"}
    default = subprocess.run(
        [sys.executable, "-m", "fabric_core", "consolidate", str(tmp_path / "ckpt")], capture_output=True, text=True
    )
    assert default.returncode == 0 and (tmp_path / "ckpt.consolidated.pt").is_file()
    missing = subprocess.run(
        [sys.executable, "-m", "fabric_core", "consolidate", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "is not a sharded checkpoint directory" in missing.stderr
