"""Training with real processes: 2 ranks on the CPU over gloo, as `python script.py` runs them.

Each ZeRO stage trains the same model on the same per-rank data as hand-written
``DistributedDataParallel`` in the same processes, with plain SGD (momentum) and DeepSpeed's
clipping off, and must end with the same weights (measured: identical losses, weights within
2e-8 after 20 steps and one clipped step, 0 without it). Then one step clipped through
``fabric.clip_gradients(max_norm=...)`` against ``torch.nn.utils.clip_grad_norm_``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fabric_core.testing import clean_environment, run_script

PARITY = """
import sys
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from fabric_core import Fabric

STRATEGY, STEPS = sys.argv[1], 20
true_weights = torch.randn(8, 2, generator=torch.Generator().manual_seed(7))

def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))

def batch(step, rank):
    generator = torch.Generator().manual_seed(1000 * step + rank)
    inputs = torch.randn(16, 8, generator=generator)
    return inputs, inputs @ true_weights + 0.01 * torch.randn(16, 2, generator=generator)

fabric = Fabric(accelerator="cpu", devices=2, strategy=STRATEGY)
fabric.launch()
rank = fabric.global_rank

# Hand-written DDP in the same processes, same data per rank.
raw = DistributedDataParallel(make_model())
raw_optimizer = torch.optim.SGD(raw.parameters(), lr=0.05, momentum=0.9)
raw_losses = []
for step in range(STEPS):
    inputs, targets = batch(step, rank)
    loss = nn.functional.mse_loss(raw(inputs), targets)
    loss.backward()
    raw_optimizer.step()
    raw_optimizer.zero_grad()
    raw_losses.append(loss.item())

model = make_model()
model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
assert type(model.module) is nn.Sequential and fabric.strategy.model is model._forward_module
losses = []
for step in range(STEPS):
    inputs, targets = batch(step, rank)
    loss = nn.functional.mse_loss(model(inputs), targets)
    fabric.backward(loss)
    optimizer.step()
    optimizer.zero_grad()
    losses.append(loss.item())
assert fabric.strategy.engines[0].global_steps == STEPS

def full_weights():
    if fabric.strategy.zero_stage_3:
        import deepspeed
        with deepspeed.zero.GatheredParameters(list(model.module.parameters())):
            return {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {k: v.detach().clone() for k, v in model.state_dict().items()}

reference = raw.module.state_dict()
weights = full_weights()
weight_diff = max((weights[k] - reference[k]).abs().max().item() for k in reference)
loss_diff = max(abs(a - b) for a, b in zip(losses, raw_losses))
print(f"rank {rank} unclipped: loss diff {loss_diff:.2e} weight diff {weight_diff:.2e}", flush=True)
for key in reference:
    torch.testing.assert_close(weights[key], reference[key], rtol=1e-5, atol=1e-6)
torch.testing.assert_close(losses, raw_losses, rtol=1e-5, atol=1e-6)
assert sum(losses[-5:]) < 0.5 * sum(losses[:5]), losses  # it learns

# One more step, clipped: DeepSpeed's gradient_clipping against torch's clip_grad_norm_.
inputs, targets = batch(STEPS, rank)
nn.functional.mse_loss(raw(inputs), targets).backward()
raw_norm = torch.nn.utils.clip_grad_norm_(raw.parameters(), max_norm=0.05)
raw_optimizer.step()
raw_optimizer.zero_grad()
fabric.backward(nn.functional.mse_loss(model(inputs), targets))
norm = fabric.clip_gradients(model, optimizer, max_norm=0.05)
optimizer.step()
optimizer.zero_grad()
assert raw_norm > 0.05, raw_norm  # the clipping did something
torch.testing.assert_close(norm, raw_norm, rtol=1e-5, atol=1e-7)
weights = full_weights()
clipped_diff = max((weights[k] - reference[k]).abs().max().item() for k in reference)
for key in reference:
    torch.testing.assert_close(weights[key], reference[key], rtol=1e-5, atol=1e-6)
assert fabric.strategy.engines[0].optimizer.clip_grad == 0.0  # clip_gradients applies to one step only
print(f"rank {rank} clipped step: norm {norm.item():.6f} torch {raw_norm.item():.6f}", flush=True)
print(f"rank {rank} clipped step: weight diff {clipped_diff:.2e}", flush=True)

# Gradient accumulation: four micro-batches, all but the last inside no_backward_sync, step once.
inputs, targets = batch(STEPS + 1, rank)
nn.functional.mse_loss(raw(inputs), targets).backward()
raw_optimizer.step()
raw_optimizer.zero_grad()
for index, (x, y) in enumerate(zip(inputs.chunk(4), targets.chunk(4))):
    with fabric.no_backward_sync(model, enabled=index < 3):
        fabric.backward(nn.functional.mse_loss(model(x), y) / 4)
optimizer.step()
optimizer.zero_grad()
weights = full_weights()
accumulated_diff = max((weights[k] - reference[k]).abs().max().item() for k in reference)
for key in reference:
    torch.testing.assert_close(weights[key], reference[key], rtol=1e-5, atol=1e-6)
print(f"rank {rank} accumulated step: weight diff {accumulated_diff:.2e}", flush=True)

# Two backward passes before a step without no_backward_sync: ZeRO 1 and 2 would reduce twice.
fabric.backward(nn.functional.mse_loss(model(inputs), targets))
try:
    fabric.backward(nn.functional.mse_loss(model(inputs), targets))
    assert fabric.strategy.zero_stage == 3, "not refused"
except RuntimeError as err:
    assert fabric.strategy.zero_stage in (1, 2) and "fabric.no_backward_sync(model)" in str(err), err
optimizer.step()
print(f"PARITY OK rank {rank}", flush=True)
"""


@pytest.mark.parametrize(
    "strategy", ["deepspeed_stage_1", "deepspeed_stage_2", "deepspeed_stage_3", "deepspeed_stage_2_offload"]
)
def test_zero_training_matches_ddp(tmp_path: Path, strategy: str) -> None:
    output = run_script(tmp_path, PARITY, strategy).check()
    assert "PARITY OK rank 0" in output and "PARITY OK rank 1" in output
    print("\n".join(line for line in output.splitlines() if "diff" in line))


BF16 = """
import torch
from torch import nn
from fabric_core import Fabric

fabric = Fabric(accelerator="cpu", devices=2, strategy="deepspeed_stage_2", precision="bf16-mixed")
fabric.launch()
torch.manual_seed(0)
true_weights = torch.randn(8, 2)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
model, optimizer = fabric.setup(model, torch.optim.Adam(model.parameters(), lr=1e-2))
engine = fabric.strategy.engines[0]
assert engine.config["bf16"]["enabled"] is True and not engine.config.get("fp16", {}).get("enabled")
assert engine.module[0].weight.dtype is torch.bfloat16  # DeepSpeed's bf16 mode: bf16 weights, fp32 master copy
losses = []
for step in range(40):
    inputs = torch.randn(32, 8, generator=torch.Generator().manual_seed(1000 * step + fabric.global_rank))
    output = model(inputs)
    assert output.dtype is torch.float32  # outputs come back in the default dtype
    loss = nn.functional.mse_loss(output, inputs @ true_weights)
    fabric.backward(loss)
    optimizer.step()
    optimizer.zero_grad()
    losses.append(loss.item())
assert sum(losses[-5:]) < 0.3 * sum(losses[:5]), losses
print(f"BF16 OK rank {fabric.global_rank}: loss {losses[0]:.3f} -> {losses[-1]:.3f}", flush=True)
"""


def test_bf16_mixed_trains_through_deepspeeds_bf16_mode(tmp_path: Path) -> None:
    output = run_script(tmp_path, BF16).check()
    assert "BF16 OK rank 0" in output and "BF16 OK rank 1" in output


GAN = """
import torch
from torch import nn
from fabric_core import Fabric

fabric = Fabric(accelerator="cpu", devices=2, strategy="deepspeed_stage_2")
fabric.launch()
rank = fabric.global_rank
STEPS = 30
bce = nn.functional.binary_cross_entropy_with_logits

def make():
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    discriminator = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    adam = {"lr": 2e-3, "betas": (0.5, 0.999)}
    return (generator, discriminator, torch.optim.Adam(generator.parameters(), **adam),
            torch.optim.Adam(discriminator.parameters(), **adam))

def data(step, rank):
    generator = torch.Generator().manual_seed(100 * step + rank)
    real = torch.randn(32, 2, generator=generator) * 0.3 + torch.tensor([2.0, -1.0])
    return real, torch.randn(32, 4, generator=generator)

def train_step(g, d, g_opt, d_opt, real, z, backward):
    fake = g(z)
    ones, zeros = torch.ones(len(real), 1), torch.zeros(len(real), 1)
    d_loss = bce(d(real), ones) + bce(d(fake.detach()), zeros)
    backward(d_loss, d)
    d_opt.step()
    d_opt.zero_grad()
    d.requires_grad_(False)  # the generator's loss must not send gradients into the discriminator
    g_loss = bce(d(fake), ones)
    backward(g_loss, g)
    g_opt.step()
    g_opt.zero_grad()
    d.requires_grad_(True)

# The reference, in one process: both ranks' batches at once. The mean loss over both halves
# has the gradient data parallelism averages.
reference = make()
for step in range(STEPS):
    (real0, z0), (real1, z1) = data(step, 0), data(step, 1)
    train_step(*reference, torch.cat([real0, real1]), torch.cat([z0, z1]), lambda loss, model: loss.backward())

g, d, g_opt, d_opt = make()
g, g_opt = fabric.setup(g, g_opt)  # two fabric.setup calls: two DeepSpeed engines
d, d_opt = fabric.setup(d, d_opt)
assert len(fabric.strategy.engines) == 2 and g._forward_module is not d._forward_module

real, z = data(0, rank)
try:
    fabric.backward(bce(d(g(z)), torch.ones(32, 1)))  # reaches both models: which engine?
    raise AssertionError("not refused")
except ValueError as err:
    assert "fabric.backward(loss, model=...)" in str(err), err
try:
    fabric.backward(bce(d(g(z)), torch.ones(32, 1)), model=g)  # the discriminator is not frozen
    raise AssertionError("not refused")
except ValueError as err:
    assert "Freeze that model" in str(err), err

# The discriminator's backward without model= (its loss reaches only its engine), the generator's with it.
def backward(loss, model):
    fabric.backward(loss, model=model if model is g else None)

for step in range(STEPS):
    train_step(g, d, g_opt, d_opt, *data(step, rank), backward)
assert [engine.global_steps for engine in fabric.strategy.engines] == [STEPS, STEPS]

for mine, theirs, name in ((g, reference[0], "generator"), (d, reference[1], "discriminator")):
    got, want = mine.state_dict(), theirs.state_dict()
    diff = max((got[k] - want[k]).abs().max().item() for k in want)
    print(f"rank {rank} {name}: weight diff {diff:.2e}", flush=True)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5)

# Both models in one checkpoint (one DeepSpeed tag each), restored into two fresh engines.
fabric.save("gan", {"generator": g, "discriminator": d, "g_opt": g_opt, "d_opt": d_opt, "step": STEPS})
g2, d2, g_opt2, d_opt2 = make()
g2, g_opt2 = fabric.setup(g2, g_opt2)
d2, d_opt2 = fabric.setup(d2, d_opt2)
state = {"generator": g2, "discriminator": d2, "g_opt": g_opt2, "d_opt": d_opt2, "step": 0}
assert fabric.load("gan", state) == {} and state["step"] == STEPS
for pair in ((g, d, g_opt, d_opt), (g2, d2, g_opt2, d_opt2)):  # one more step each: the same result
    train_step(*pair, *data(STEPS, rank), lambda loss, m: fabric.backward(loss, model=m))
for a, b in ((g, g2), (d, d2)):
    for key, value in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[key], value, rtol=0, atol=0)
print(f"GAN OK rank {rank}", flush=True)
"""


def test_two_engines_train_a_gan_like_one_process_does(tmp_path: Path) -> None:
    output = run_script(tmp_path, GAN).check()
    assert "GAN OK rank 0" in output and "GAN OK rank 1" in output
    print("\n".join(line for line in output.splitlines() if "diff" in line))

    def consolidate(*args: str) -> subprocess.CompletedProcess[str]:
        # The core's `fabric consolidate`, which hands a DeepSpeed folder to this add-on.
        command = [sys.executable, "-m", "fabric_core", "consolidate", str(tmp_path / "gan"), *args]
        return subprocess.run(command, env=clean_environment(), capture_output=True, text=True, timeout=120)

    result = consolidate("-o", str(tmp_path / "g.pt"))
    assert result.returncode == 2 and "holds 2 models: ['discriminator', 'generator']. Choose one with --model" in (
        result.stderr
    )
    result = consolidate("-o", str(tmp_path / "g.pt"), "--model", "generator")
    assert result.returncode == 0, result.stderr
    assert list(torch.load(tmp_path / "g.pt", weights_only=True)) == ["0.weight", "0.bias", "2.weight", "2.bias"]


STAGE_3 = """
import torch
from torch import nn
from fabric_core import Fabric

fabric = Fabric(accelerator="cpu", devices=2, strategy="deepspeed_stage_3")
fabric.launch()

def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 2))

inputs = torch.randn(4, 8, generator=torch.Generator().manual_seed(3))
expected = build()(inputs)

# init_module under stage 3 is deepspeed.zero.Init: each rank holds only its part of each parameter.
for empty_init in (False, True):
    with fabric.init_module(empty_init=empty_init):
        model = build()
    weight = model[0].weight
    assert hasattr(weight, "ds_id") and weight.ds_numel == 8 * 64 and weight.ds_tensor.numel() == 8 * 64 // 2

# A frozen model without an optimizer (inference): the engine gathers the parameters for forward.
model.load_state_dict  # (weights from the empty_init=True model are not used below)
with fabric.init_module():
    frozen = build()
frozen.requires_grad_(False)
frozen = fabric.setup(frozen)
with torch.no_grad():
    torch.testing.assert_close(frozen(inputs), expected)

# setup_module, then setup_optimizers: refused, naming the fix.
module = fabric.setup_module(nn.Linear(3, 3))
try:
    fabric.setup_optimizers(torch.optim.SGD(module.parameters(), lr=0.1))
    raise AssertionError("not refused")
except NotImplementedError as err:
    assert "DeepSpeed needs the model and optimizer together" in str(err), err
    assert "fabric.setup(model, optimizer)" in str(err), err

# What DeepSpeed cannot do is refused with the alternative.
trained = nn.Linear(8, 2)
trained, optimizer = fabric.setup(trained, torch.optim.SGD(trained.parameters(), lr=0.1))
fabric.backward(trained(inputs).sum(), model=trained)
for call, error, text in (
    (lambda: fabric.clip_gradients(trained, optimizer, clip_val=0.5), NotImplementedError, "max_norm=0.5"),
    (lambda: fabric.clip_gradients(trained, optimizer, max_norm=1.0, norm_type=1), ValueError, "norm_type=1"),
    (lambda: optimizer.step(closure=lambda: 0.0), ValueError, "takes no closure"),
):
    try:
        call()
        raise AssertionError(f"not refused: {text}")
    except error as err:
        assert text in str(err), err
optimizer.step()
print(f"STAGE 3 OK rank {fabric.global_rank}", flush=True)
"""


def test_stage_3_init_module_inference_and_what_is_refused(tmp_path: Path) -> None:
    output = run_script(tmp_path, STAGE_3).check()
    assert "STAGE 3 OK rank 0" in output and "STAGE 3 OK rank 1" in output
