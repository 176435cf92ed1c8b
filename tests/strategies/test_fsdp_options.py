"""FSDP2 options on 2 real processes (gloo, CPU): sharding strategies, CPU offload, precisions,
torch.compile, and the checkpoint and setup errors that test_fsdp.py does not cover.

Parity: every 32-true configuration below (SHARD_GRAD_OP, NO_SHARD, HYBRID_SHARD on a (1, 2)
and a (2, 1) mesh, CPU offload) does the same arithmetic as DDP, so after a few Adam steps
its gathered weights equal hand-written DDP's within fp32 tolerance. The low-precision runs
(16-mixed, bf16-true) cannot match fp32 DDP; they must train with a falling loss instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.fsdp_scripts import MODEL_AND_DATA
from tests.helpers.processes import run_script

COMMON = (
    MODEL_AND_DATA
    + """
def step(fabric, model, optimizer, x, y):
    loss = nn.functional.mse_loss(model(x), y)
    fabric.backward(loss)
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()

def expect_error(kind, words, function, *args, **kwargs):
    try:
        function(*args, **kwargs)
    except kind as err:
        for word in words:
            assert word in str(err), (word, str(err))
    else:
        raise AssertionError(f"expected {kind.__name__} mentioning {words}")
"""
)

# -- sharding strategies, CPU offload, precisions ------------------------------------------

OPTIONS = (
    COMMON
    + """
from torch.nn.parallel import DistributedDataParallel

config = sys.argv[1]
CONFIGS = {
    # name: (strategy, precision, local rows of the (16, 8) first weight, unsharded between forward and backward)
    "SHARD_GRAD_OP": (FSDPStrategy(auto_wrap_policy={Block}, sharding_strategy="SHARD_GRAD_OP"), "32-true", 8, True),
    "NO_SHARD": (FSDPStrategy(auto_wrap_policy={Block}, sharding_strategy="NO_SHARD"), "32-true", 16, False),
    "HYBRID_1x2": (FSDPStrategy(auto_wrap_policy={Block}, sharding_strategy="HYBRID_SHARD", device_mesh=(1, 2)),
                   "32-true", 8, False),
    "HYBRID_2x1": (FSDPStrategy(auto_wrap_policy={Block}, sharding_strategy="HYBRID_SHARD", device_mesh=(2, 1)),
                   "32-true", 16, False),
    "cpu_offload": ("fsdp_cpu_offload", "32-true", 8, False),
    "16-mixed": (FSDPStrategy(auto_wrap_policy={Block}), "16-mixed", 8, False),
    "bf16-true": (FSDPStrategy(auto_wrap_policy={Block}), "bf16-true", 8, False),
}
strategy, precision, rows, kept_unsharded = CONFIGS[config]
fabric = Fabric(accelerator="cpu", devices=2, strategy=strategy, precision=precision)
fabric.launch()
rank = fabric.global_rank
model = make_model()
model, optimizer = fabric.setup(model, torch.optim.Adam(model.parameters(), lr=1e-2))
assert all(type(p).__name__ == "DTensor" for p in model.parameters())
assert model.module[0].weight.to_local().shape == (rows, 8), model.module[0].weight.to_local().shape
if config == "cpu_offload":
    assert fabric.strategy.cpu_offload

if precision == "32-true":
    data = batches(100 + rank, 6)
    for index, (x, y) in enumerate(data):
        if index == 0:
            # SHARD_GRAD_OP keeps a wrapped block's parameters gathered from forward to backward.
            loss = nn.functional.mse_loss(model(x), y)
            unsharded = type(model.module[1].a.weight).__name__ != "DTensor"
            assert unsharded == kept_unsharded, (config, type(model.module[1].a.weight))
            fabric.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
        else:
            step(fabric, model, optimizer, x, y)
    full = fabric.strategy.get_module_state_dict(model.module)  # gathered on rank 0
    raw = DistributedDataParallel(make_model())
    raw_optimizer = torch.optim.Adam(raw.parameters(), lr=1e-2)
    for x, y in data:
        nn.functional.mse_loss(raw(x), y).backward()
        raw_optimizer.step()
        raw_optimizer.zero_grad()
    if rank == 0:
        assert list(full) == list(raw.module.state_dict())
        for (name, expected), actual in zip(raw.module.state_dict().items(), full.values(), strict=True):
            torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6, msg=name)
else:
    x, y = batches(7, 1)[0]
    losses = [step(fabric, model, optimizer, x, y) for _ in range(15)]
    assert losses[-1] < 0.5 * losses[0], losses
    if precision == "16-mixed":
        scaler = fabric.strategy.precision.scaler
        fabric.backward(nn.functional.mse_loss(model(x), y))
        before = [p.detach().to_local().clone() for p in model.parameters()]
        scale = scaler.get_scale()
        if rank == 1:  # an overflow in one rank's shard only: every rank must skip the step
            model.module[1].a.weight.grad.to_local()[0, 0] = float("inf")
        optimizer.step()
        optimizer.zero_grad()
        after = [p.detach().to_local() for p in model.parameters()]
        assert all(torch.equal(b, a) for b, a in zip(before, after)), "the inf step was not skipped"
        assert scaler.get_scale() == scale / 2, (scale, scaler.get_scale())
        step(fabric, model, optimizer, x, y)  # and the next finite step updates again
        assert not all(torch.equal(b, p.detach().to_local()) for b, p in zip(before, model.parameters()))
print(f"OPTIONS OK rank {rank} {config}", flush=True)
"""
)


@pytest.mark.parametrize(
    "config", ["SHARD_GRAD_OP", "NO_SHARD", "HYBRID_1x2", "HYBRID_2x1", "cpu_offload", "16-mixed", "bf16-true"]
)
def test_fsdp_option_matches_ddp_or_trains(tmp_path: Path, config: str) -> None:
    run = run_script(tmp_path, OPTIONS, config)
    assert run.returncode == 0, run.output
    assert f"OPTIONS OK rank 0 {config}" in run.output and f"OPTIONS OK rank 1 {config}" in run.output


# -- checkpoints and setup errors --------------------------------------------------------------

CHECKPOINTS = (
    COMMON
    + """
import os
from pathlib import Path
from torch.distributed.checkpoint import FileSystemReader

fabric = Fabric(accelerator="cpu", devices=2, strategy=FSDPStrategy(auto_wrap_policy={Block}))
fabric.launch()
rank = fabric.global_rank
model = make_model()
model, optimizer = fabric.setup(model, torch.optim.Adam(model.parameters(), lr=1e-2))
for x, y in batches(1, 2):
    step(fabric, model, optimizer, x, y)
state = {"model": model, "optimizer": optimizer, "config": {"lr": 0.01, "name": "run"}}

def saved_keys(path):
    return set(FileSystemReader(path).read_metadata().state_dict_metadata)

def leftovers():
    return sorted(p.name for p in Path(".").iterdir() if p.name.startswith("."))

# filter: not on a sharded optimizer; on the model (and on a plain dict) it keeps the chosen entries.
expect_error(
    ValueError, ["filter={'optimizer': ...}", "sharded optimizer"],
    fabric.save, "never", state, filter={"optimizer": lambda k, v: True},
)
assert not Path("never").exists()
only_weights = {"model": lambda name, value: name.endswith("weight"), "config": lambda name, value: name == "lr"}
fabric.save("filtered", state, filter=only_weights)
model_keys = {key for key in saved_keys("filtered") if key.startswith("model.")}
assert model_keys == {"model.0.weight", "model.1.a.weight", "model.1.b.weight", "model.2.a.weight",
                      "model.2.b.weight", "model.3.weight"}, model_keys
assert any(key.startswith("optimizer.") for key in saved_keys("filtered"))
other = fabric.setup_module(make_model())
fresh_bias = other.module[0].bias.full_tensor().clone()
holder = {"model": other, "config": None}
try:
    fabric.load("filtered", {"model": other})
except KeyError as err:
    assert "lacks entries the requested objects have" in str(err) and "strict=False" in str(err), err
else:
    raise AssertionError("a strict load of a filtered checkpoint did not complain")
fabric.load("filtered", holder, strict=False)  # the biases are not in the checkpoint
assert holder["config"] == {"lr": 0.01}, holder["config"]
assert torch.equal(other.module[0].weight.full_tensor(), model.module[0].weight.full_tensor())
assert torch.equal(other.module[0].bias.full_tensor(), fresh_bias)

# Saving over an existing checkpoint directory replaces it; over a file too; nothing is left behind.
if rank == 0:
    (Path("filtered") / "stale.txt").write_text("old")
    Path("was_a_file").write_text("an old checkpoint file")
fabric.barrier()
fabric.save("filtered", state)
fabric.save("was_a_file", state)
assert not (Path("filtered") / "stale.txt").exists()
assert (Path("filtered") / ".metadata").is_file() and {"model.0.bias"} <= saved_keys("filtered")
assert Path("was_a_file").is_dir() and (Path("was_a_file") / ".metadata").is_file()
assert leftovers() == [], leftovers()
# ... but a directory that is not a checkpoint is never deleted.
if rank == 0:
    os.makedirs("my_data", exist_ok=True)
    Path("my_data/notes.txt").write_text("keep me")
fabric.barrier()
expect_error(IsADirectoryError, ["not a checkpoint", "delete"], fabric.save, "my_data", state)
assert Path("my_data/notes.txt").read_text() == "keep me"

# Loading: load_raw and a state-less load say what to do instead.
expect_error(ValueError, ["load_raw", "sharded checkpoint directory", "fabric.load(path"],
             fabric.load_raw, "filtered", model)
expect_error(ValueError, ["without a state", "fabric consolidate"], fabric.load, "filtered")
# A DCP directory without fabric's meta file and manifest (written by plain torch.distributed.checkpoint) loads too.
if rank == 0:
    os.remove("was_a_file/fabric_meta.pt")
    os.remove("was_a_file/fabric_manifest.json")
fabric.barrier()
restored = fabric.setup_module(make_model())
assert fabric.load("was_a_file", {"model": restored}) == {}
assert torch.equal(restored.module[3].weight.full_tensor(), model.module[3].weight.full_tensor())

# Full checkpoints (the strategy reads state_dict_type at every save): filter, and replacing a sharded directory.
fabric.strategy.state_dict_type = "full"
fabric.save("filtered", state, filter={"model": lambda name, value: name.startswith("3.")})
checkpoint = torch.load("filtered", weights_only=True)
assert set(checkpoint["model"]) == {"3.weight", "3.bias"} and set(checkpoint) == {"model", "optimizer", "config"}
assert leftovers() == [], leftovers()
expect_error(IsADirectoryError, ["not a checkpoint"], fabric.save, "my_data", state)
fabric.strategy.state_dict_type = "sharded"

# An optimizer holding another model's parameters.
first, second = make_model(), make_model()
mixed = torch.optim.SGD([*first.parameters(), *second[0].parameters()], lr=0.1)
expect_error(ValueError, ["SGD", "holds 2 parameter(s)", "not in the model set up with it"],
             fabric.setup, first, mixed)
# An optimizer made from the parameters that setup_module replaced would silently never train.
plain = make_model()
stale = torch.optim.SGD(plain.parameters(), lr=0.1)
sharded = fabric.setup_module(plain)
expect_error(ValueError, ["setup_optimizers", "holds 12 parameter(s)", "belong to no model"],
             fabric.setup_optimizers, stale)
fabric.setup_optimizers(torch.optim.SGD(sharded.parameters(), lr=0.1))  # the right way
# A sharded optimizer saved without its model.
expect_error(ValueError, ["needs its model in the same state dict"], fabric.save, "alone", {"optimizer": optimizer})
print(f"CHECKPOINTS OK rank {rank}", flush=True)
"""
)


def test_checkpoint_filter_replace_and_errors_and_foreign_optimizer_params(tmp_path: Path) -> None:
    run = run_script(tmp_path, CHECKPOINTS)
    assert run.returncode == 0, run.output
    assert "CHECKPOINTS OK rank 0" in run.output and "CHECKPOINTS OK rank 1" in run.output


# -- torch.compile -------------------------------------------------------------------------------

COMPILE = (
    COMMON
    + """
fabric = Fabric(accelerator="cpu", devices=2, strategy=FSDPStrategy(auto_wrap_policy={Block}))
fabric.launch()
x, y = batches(7, 1)[0]
eager = make_model()
eager, eager_optimizer = fabric.setup(eager, torch.optim.Adam(eager.parameters(), lr=1e-2))
expected = [step(fabric, eager, eager_optimizer, x, y) for _ in range(3)]

model = make_model()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
model, optimizer = fabric.setup(torch.compile(model), optimizer)  # compiled before setup, as Lightning advises
losses = [step(fabric, model, optimizer, x, y) for _ in range(3)]
torch.testing.assert_close(losses, expected, rtol=1e-4, atol=1e-6)
assert list(model.state_dict())[0] == "0.weight"  # the user's names, no "_orig_mod." prefix
fabric.save("ckpt", {"model": model, "optimizer": optimizer})
print(f"COMPILE OK rank {fabric.global_rank}", flush=True)
"""
)


@pytest.mark.slow
def test_compiled_model_trains_under_fsdp(tmp_path: Path) -> None:
    run = run_script(tmp_path, COMPILE, timeout=240)
    assert run.returncode == 0, run.output
    assert "COMPILE OK rank 0" in run.output and "COMPILE OK rank 1" in run.output
