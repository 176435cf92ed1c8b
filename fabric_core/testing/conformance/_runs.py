"""Short, deterministic training runs that the suites compare with and without the plugin under test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from fabric_core.fabric import Fabric

#: What a loop calls through ``fabric.call`` (the example trainer's names, without ``trainer``);
#: each callback gets only the keyword arguments its method names.
LOOP_CALLS: tuple[str, ...] = (
    "on_train_start",
    "on_train_epoch_start",
    "on_train_batch_end",
    "on_validation_end",
    "on_train_epoch_end",
    "on_train_end",
)


def train(fabric: Fabric, folder: Path, steps: int = 4) -> list[float]:
    """Set up, train ``steps`` steps (calling :data:`LOOP_CALLS`), save, load into fresh objects; the losses."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.05))
    generator = torch.Generator().manual_seed(1)
    losses: list[float] = []
    fabric.call("on_train_start", fabric=fabric, total=steps, start_step=0)
    fabric.call("on_train_epoch_start", fabric=fabric, epoch=0)
    for step in range(1, steps + 1):
        inputs = fabric.to_device(torch.randn(16, 8, generator=generator))
        loss = nn.functional.mse_loss(model(inputs), inputs[:, :2] * 0.5)
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
        metrics: dict[str, Any] = {"loss": losses[-1]}
        batch_end = {"step": step, "total": steps, "loss": loss.detach(), "metrics": metrics, "batch_idx": step - 1}
        fabric.call("on_train_batch_end", fabric=fabric, **batch_end)
    fabric.call("on_validation_end", fabric=fabric, step=steps, metrics={"val_loss": losses[-1]})
    fabric.call("on_train_epoch_end", fabric=fabric, epoch=0)
    fabric.call("on_train_end", fabric=fabric, step=steps)
    fabric.save(folder / "checkpoint.pt", {"model": model, "optimizer": optimizer, "step": steps})
    state = {"model": model, "optimizer": optimizer, "step": 0}
    fabric.load(folder / "checkpoint.pt", state)
    assert state["step"] == steps
    return losses
