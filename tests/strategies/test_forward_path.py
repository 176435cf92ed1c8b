"""Methods other than ``forward`` never bypass the strategy (real processes for DDP and FSDP).

The step methods (``training_step`` & co.) run through the strategy's forward path, so DDP
averages their gradients and FSDP gathers their parameters; a marked method may loop over
``self(x)``; any other method that uses the weights while a strategy wraps the model is
refused with a message naming ``mark_forward_method``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from fabric_core import Fabric
from tests.helpers.processes import run_script

MODEL = """
import sys
import torch
from torch import nn
from fabric_core import Fabric

class Scaler(nn.Module):
    # y = w * x with w = 1: the gradient of sum(y) with respect to w is x.
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(1, 1, bias=False)
        nn.init.ones_(self.layer.weight)

    def forward(self, x):
        return self.layer(x)

    def training_step(self, x):
        return self(x).sum()

    def generate(self, x, steps):
        for _ in range(steps):
            x = self(x) * 2
        return x

    def score(self, x):
        return (x @ self.layer.weight).sum()

    def parameter_count(self):
        return sum(p.numel() for p in self.parameters())

def full(tensor):
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
"""

STEP_GRADIENTS = (
    MODEL
    + """
fabric = Fabric(accelerator="cpu", devices=2, strategy=sys.argv[1])
fabric.launch()
model = fabric.setup(Scaler())
# Rank 0 sees x = 1, rank 1 sees x = 2: the averaged gradient is 1.5 on both.
loss = model.training_step(torch.full((1, 1), float(fabric.global_rank + 1)))
fabric.backward(loss)
gradient = full(model.module.layer.weight.grad).item()
gathered = fabric.all_gather(torch.tensor([gradient]))
print(f"GRADIENTS rank {fabric.global_rank}: {gathered.flatten().tolist()}", flush=True)
"""
)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_training_step_gradients_are_averaged_over_ranks(tmp_path: Path, strategy: str) -> None:
    run = run_script(tmp_path, STEP_GRADIENTS, strategy, timeout=120)
    assert run.returncode == 0, run.output
    assert "GRADIENTS rank 0: [1.5, 1.5]" in run.output, run.output
    assert "GRADIENTS rank 1: [1.5, 1.5]" in run.output, run.output


OTHER_METHODS = (
    MODEL
    + """
fabric = Fabric(accelerator="cpu", devices=int(sys.argv[1]), strategy=sys.argv[2])
fabric.launch()
model = fabric.setup(Scaler())
x = torch.full((1, 1), 1.0)
print(f"COUNT {model.parameter_count()}", flush=True)  # reads no weights in a computation: allowed
for name, call in [("generate", lambda: model.generate(x, 3)), ("score", lambda: model.score(x))]:
    try:
        call()
        print(f"{name.upper()} RAN", flush=True)
    except RuntimeError as err:
        print(f"{name.upper()} REFUSED: {err}", flush=True)
model.mark_forward_method("generate")
with torch.no_grad():
    print(f"GENERATED rank {fabric.global_rank}: {model.generate(x, 3).item()}", flush=True)
"""
)


def test_unmarked_methods_are_refused_under_ddp_and_a_marked_generate_works(tmp_path: Path) -> None:
    run = run_script(tmp_path, OTHER_METHODS, "2", "ddp", timeout=120)
    assert run.returncode == 0, run.output
    assert run.output.count("COUNT 1") == 2
    assert (
        "GENERATE REFUSED: Scaler.generate() was called on the model returned by fabric.setup(), outside its "
        "forward: it calls Scaler.forward, so DDPStrategy would not see it (no gradient sync, no parameter "
        "gathering) and training would be silently wrong. Mark the method once after setup: "
        "model.mark_forward_method('generate'); it then runs through the strategy like forward."
    ) in run.output, run.output
    assert "SCORE REFUSED: Scaler.score() was called" in run.output
    assert "it computes with the model's parameters" in run.output
    assert "RAN" not in run.output
    # x -> 2x three times, with w = 1: 8.
    assert "GENERATED rank 0: 8.0" in run.output and "GENERATED rank 1: 8.0" in run.output


def test_unmarked_methods_are_refused_under_fsdp_with_the_user_class_name(tmp_path: Path) -> None:
    run = run_script(tmp_path, OTHER_METHODS, "2", "fsdp", timeout=120)
    assert run.returncode == 0, run.output
    assert "GENERATE REFUSED: Scaler.generate() was called" in run.output, run.output
    assert "FSDPStrategy would not see it" in run.output
    assert "GENERATED rank 0: 8.0" in run.output and "GENERATED rank 1: 8.0" in run.output


class _Scaler(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(1, 1, bias=False)
        nn.init.ones_(self.layer.weight)
        self.calls: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append("forward")
        return self.layer(x)

    def training_step(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(f"training_step autocast={torch.is_autocast_enabled('cpu')}")
        return self(x).sum()

    def generate(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        for _ in range(steps):
            x = self(x) * 2
        return x

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.layer.weight).sum()


def test_one_device_step_methods_run_through_the_precision_and_forward_is_restored() -> None:
    fabric = Fabric(accelerator="cpu", precision="bf16-mixed")
    model = fabric.setup(_Scaler())
    loss = model.training_step(torch.ones(2, 1))
    assert loss.dtype == torch.float32  # the precision converted the output back, as for forward
    # It ran under the precision's autocast, like forward, and self(x) reached the real forward.
    assert model.module.calls == ["training_step autocast=True", "forward"]
    assert "forward" not in model.module.__dict__  # the real forward is back after the call
    model.mark_forward_method("generate")
    assert model.generate(torch.ones(1, 1), 2).float().item() == 4.0
    assert "forward" not in model.module.__dict__
    # One device: no strategy to bypass, so other methods run as they are.
    assert model.score(torch.ones(1, 1)).item() == 1.0


def test_a_raising_step_method_still_restores_forward() -> None:
    class Failing(_Scaler):
        def training_step(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("boom")

    fabric = Fabric(accelerator="cpu")
    model = fabric.setup(Failing())
    with pytest.raises(ValueError, match="boom"):
        model.training_step(torch.ones(1, 1))
    assert "forward" not in model.module.__dict__
    assert model(torch.ones(1, 1)).item() == 1.0


def test_mark_forward_method_rejects_unknown_names_and_forward() -> None:
    fabric = Fabric(accelerator="cpu")
    model = fabric.setup(_Scaler())
    with pytest.raises(ValueError, match="_Scaler has no method 'nope'"):
        model.mark_forward_method("nope")
    with pytest.raises(ValueError, match="forward already runs through Fabric"):
        model.mark_forward_method("forward")
