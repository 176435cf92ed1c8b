"""The model and data that the FSDP test scripts share (source text, prepended to each script)."""

from __future__ import annotations

MODEL_AND_DATA = """
import json, sys
import torch
import torch.distributed as dist
from torch import nn
from fabric_core import Fabric
from fabric_core.strategies.fsdp import FSDPStrategy

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 16)
        self.b = nn.Linear(16, 16)

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x)))

def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), Block(), Block(), nn.Linear(16, 2))

def batches(seed, steps):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(4, 8, generator=g), torch.randn(4, 2, generator=g)) for _ in range(steps)]
"""
