"""``model_parallel``: tensor parallelism through the user's parallelize_fn, on 2 real processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fabric_core import Fabric
from fabric_core.strategies.model_parallel import ModelParallelStrategy
from tests.helpers.processes import run_script

TENSOR_PARALLEL = """
import torch
from torch import nn
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module
from fabric_core import Fabric
from fabric_core.strategies.model_parallel import ModelParallelStrategy

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(8, 32)
        self.down = nn.Linear(32, 8)

    def forward(self, x):
        return self.down(torch.relu(self.up(x)))

def parallelize(model, mesh):
    tp_mesh = mesh["tensor_parallel"]
    assert tp_mesh.size() == 2 and mesh["data_parallel"].size() == 1
    return parallelize_module(model, tp_mesh, {"up": ColwiseParallel(), "down": RowwiseParallel()})

fabric = Fabric(accelerator="cpu", devices=2, strategy=ModelParallelStrategy(parallelize_fn=parallelize))
fabric.launch()
torch.manual_seed(0)
model = MLP()
model, optimizer = fabric.setup(model, torch.optim.Adam(model.parameters(), lr=1e-2))
assert model.up.weight.to_local().shape == (16, 8)  # each rank holds half of the columns
# Both ranks of a tensor-parallel group see the same data: one data-parallel replica.
assert fabric.strategy.distributed_sampler_kwargs == {"num_replicas": 1, "rank": 0}
generator = torch.Generator().manual_seed(1)
x, y = torch.randn(16, 8, generator=generator), torch.randn(16, 8, generator=generator)
losses = []
for _ in range(30):
    loss = nn.functional.mse_loss(model(x), y)
    fabric.backward(loss)
    fabric.clip_gradients(model, optimizer, max_norm=10.0)
    optimizer.step()
    optimizer.zero_grad()
    losses.append(loss.item())
assert losses[-1] < 0.5 * losses[0], losses
fabric.save("ckpt", {"model": model, "optimizer": optimizer, "losses": losses})
state = {"model": model, "optimizer": optimizer}
assert fabric.load("ckpt", state)["losses"] == losses
print(f"TP OK rank {fabric.global_rank} {losses[0]:.3f} -> {losses[-1]:.3f}", flush=True)
"""


def test_tensor_parallel_trains_on_two_processes(tmp_path: Path) -> None:
    run = run_script(tmp_path, TENSOR_PARALLEL)
    assert run.returncode == 0, run.output
    assert "TP OK rank 0" in run.output and "TP OK rank 1" in run.output


def test_model_parallel_needs_a_parallelize_fn() -> None:
    with pytest.raises(ValueError, match=r"strategy='model_parallel' needs your parallelize_fn"):
        Fabric(accelerator="cpu", devices=2, strategy="model_parallel")
    with pytest.raises(TypeError, match="expected a function"):
        ModelParallelStrategy(parallelize_fn=3)  # type: ignore[arg-type]
    strategy = ModelParallelStrategy(parallelize_fn=lambda model, mesh: model, data_parallel_size=3)
    fabric = Fabric(accelerator="cpu", devices=2, strategy=strategy)
    with pytest.raises(ValueError, match="makes a 3 x 2 mesh, but the run has 2 processes"):
        fabric.strategy._mesh_shape_for_run()  # type: ignore[attr-defined]
