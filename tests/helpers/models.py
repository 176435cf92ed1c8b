"""Small models and data the tests train on (made here, nothing downloaded)."""

from __future__ import annotations

import torch
from torch import nn


def make_mlp(seed: int = 0, width: int = 32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2))


def make_data(steps: int, batch: int = 16, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(steps, batch, 8, generator=generator)
    targets = torch.randn(steps, batch, 2, generator=generator)
    return list(zip(inputs, targets, strict=True))
