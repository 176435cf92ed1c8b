"""Checks that run inside a (possibly multi-process) Fabric run and raise AssertionError on failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from fabric_core.fabric import Fabric


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 2))


def _batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(16, 8, generator=generator)
    return inputs, inputs[:, :2] * 0.5


def check_training_reduces_loss(fabric: Fabric, steps: int = 25, lr: float = 0.05) -> list[float]:
    """Set up a small model and optimizer, train on one batch; the loss must fall by half."""
    model = _model()
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9))
    inputs, targets = fabric.to_device(_batch())
    losses = []
    for _ in range(steps):
        output = model(inputs)
        assert output.dtype == torch.get_default_dtype(), f"outputs come back as {output.dtype}"
        loss = nn.functional.mse_loss(output.float(), targets.float())
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], f"the loss did not fall: {losses[0]:.4f} -> {losses[-1]:.4f}"
    return losses


def check_checkpoint_round_trip(fabric: Fabric, path: str | Path, steps: int = 3) -> None:
    """Save mid-training, load into fresh objects, and continue with identical losses."""
    model = _model()
    model, optimizer = fabric.setup(model, torch.optim.Adam(model.parameters(), lr=1e-2))
    inputs, targets = fabric.to_device(_batch())

    def step(model: Any, optimizer: Any) -> float:
        loss = nn.functional.mse_loss(model(inputs).float(), targets.float())
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        return float(loss.detach())

    for _ in range(steps):
        step(model, optimizer)
    fabric.save(path, {"model": model, "optimizer": optimizer, "step": steps, "note": "conformance"})
    expected = [step(model, optimizer) for _ in range(steps)]

    fresh = _model()
    fresh, fresh_optimizer = fabric.setup(fresh, torch.optim.Adam(fresh.parameters(), lr=1e-2))
    state = {"model": fresh, "optimizer": fresh_optimizer, "step": 0}
    remainder = fabric.load(path, state)
    assert state["step"] == steps, f"plain values were not restored: step={state['step']}"
    assert remainder == {"note": "conformance"}, f"unexpected remainder {remainder}"
    resumed = [step(fresh, fresh_optimizer) for _ in range(steps)]
    torch.testing.assert_close(resumed, expected, rtol=1e-5, atol=1e-7)


def check_collectives(fabric: Fabric) -> None:
    """barrier, broadcast, all_gather and all_reduce agree with their definitions on every rank.

    ``all_gather`` stacks the ranks' tensors on a new first dimension of size ``world_size``
    (a number becomes a tensor of shape ``(world_size,)``); with one process it returns its
    input unchanged, without the new dimension (docs/guide/distributed.md).
    """
    rank, world = fabric.global_rank, fabric.world_size
    fabric.barrier("conformance")
    assert fabric.broadcast({"from": rank}) == {"from": 0}
    gathered = fabric.all_gather(torch.tensor([float(rank)], device=fabric.device))
    expected = torch.arange(world, dtype=torch.float32).view(world, 1) if world > 1 else torch.tensor([0.0])
    assert torch.equal(gathered.cpu(), expected), f"all_gather of shape (1,) on {world} process(es) gave {gathered}"
    number = fabric.all_gather(rank)
    assert tuple(number.shape) == ((world,) if world > 1 else ()), f"all_gather of a number gave shape {number.shape}"
    total = fabric.all_reduce(torch.tensor(float(rank), device=fabric.device), reduce_op="sum")
    assert float(total) == sum(range(world)), total
    mean = fabric.all_reduce(torch.tensor(float(rank), device=fabric.device), reduce_op="mean")
    assert abs(float(mean) - sum(range(world)) / world) < 1e-6, mean
