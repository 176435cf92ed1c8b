"""Every behaviour hook runs through the plugin manager, and a wrapper sees each call and its result."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from fabric_core import Fabric, hookimpl
from fabric_core.errors import PluginValidationError


class Tracer:
    """Wraps every single-owner hook and records what it saw."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl(wrapper=True)
    def fabric_setup_model(self, module: nn.Module, optimizers: list[Any]) -> Generator[None, Any, Any]:
        result = yield
        self.calls.append(("fabric_setup_model", (type(module).__name__, len(optimizers), type(result[0]).__name__)))
        return result

    @hookimpl(wrapper=True)
    def fabric_setup_optimizer(self, optimizer: Any) -> Generator[None, Any, Any]:
        result = yield
        self.calls.append(("fabric_setup_optimizer", type(result).__name__))
        return result

    @hookimpl(wrapper=True)
    def fabric_backward(self, tensor: torch.Tensor) -> Generator[None, Any, Any]:
        result = yield
        self.calls.append(("fabric_backward", result))
        return result

    @hookimpl(wrapper=True)
    def fabric_optimizer_step(self, optimizer: Any, kwargs: dict) -> Generator[None, Any, Any]:
        result = yield
        self.calls.append(("fabric_optimizer_step", (type(optimizer).__name__, sorted(kwargs), result)))
        return result

    @hookimpl(wrapper=True)
    def fabric_save_checkpoint(self, path: Path, state: dict) -> Generator[None, Any, Any]:
        result = yield
        self.calls.append(("fabric_save_checkpoint", (path.name, sorted(state), result)))
        return result

    @hookimpl(wrapper=True)
    def fabric_load_checkpoint(self, path: Path, strict: bool, weights_only: bool) -> Generator[None, Any, Any]:
        result = yield
        self.calls.append(("fabric_load_checkpoint", (path.name, strict, weights_only, result)))
        return result


def test_wrappers_see_every_single_owner_hook(tmp_path: Path) -> None:
    tracer = Tracer()
    fabric = Fabric(accelerator="cpu", plugins=[tracer])
    model = nn.Linear(2, 1)
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.1))
    lone = fabric.setup_module(nn.Linear(2, 1))
    fabric.setup_optimizers(torch.optim.Adam(lone.parameters()))
    fabric.backward(model(torch.ones(1, 2)).sum())
    loss = optimizer.step(closure=lambda: torch.tensor(3.0))
    fabric.save(tmp_path / "c.pt", {"model": model, "step": 1})
    fabric.load(tmp_path / "c.pt", {"model": model}, strict=False)

    assert loss == torch.tensor(3.0)
    assert tracer.calls == [
        ("fabric_setup_model", ("Linear", 1, "Linear")),
        ("fabric_setup_model", ("Linear", 0, "Linear")),
        ("fabric_setup_optimizer", "Adam"),
        ("fabric_backward", True),
        ("fabric_optimizer_step", ("SGD", ["closure"], torch.tensor(3.0))),
        ("fabric_save_checkpoint", ("c.pt", ["model", "step"], True)),
        ("fabric_load_checkpoint", ("c.pt", False, True, {"step": 1})),
    ]


def test_a_wrapper_can_replace_a_result() -> None:
    class DoubleStep:
        @hookimpl(wrapper=True)
        def fabric_optimizer_step(self) -> Generator[None, Any, Any]:
            result = yield
            return result * 2

    fabric = Fabric(accelerator="cpu", plugins=[DoubleStep()])
    model = nn.Linear(2, 1)
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.1))
    assert optimizer.step(closure=lambda: torch.tensor(2.0)) == torch.tensor(4.0)


@pytest.mark.parametrize(
    "hook", ["fabric_setup_model", "fabric_setup_optimizer", "fabric_save_checkpoint", "fabric_load_checkpoint"]
)
def test_a_second_owner_of_a_single_owner_hook_is_refused(hook: str) -> None:
    owner = type("Owner", (), {hook: lambda self, **kwargs: None})()
    with pytest.raises(PluginValidationError, match=rf"{hook} is implemented by 'strategy' .* and .*Owner"):
        Fabric(accelerator="cpu", plugins=[owner])


class _StepEvents:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def fabric_on_before_backward(self, loss: torch.Tensor) -> None:
        self.seen.append("before_backward")

    def fabric_on_after_optimizer_step(self, optimizer: Any) -> None:
        self.seen.append("after_step")


def test_the_fast_path_is_planned_from_the_registrations() -> None:
    # The strategy alone: backward and step skip pluggy, unused per-step events are not called.
    plain = Fabric(accelerator="cpu")._hooks
    assert plain._direct_backward is not None and plain._direct_step is not None
    assert not (plain._before_backward or plain._after_backward or plain._before_step or plain._after_step)

    # A wrapper must see every call, so backward goes through pluggy; events that exist are called.
    tracer, events = Tracer(), _StepEvents()
    fabric = Fabric(accelerator="cpu", plugins=[tracer, events])
    hooks = fabric._hooks
    assert hooks._direct_backward is None and hooks._direct_step is None
    assert hooks._before_backward and hooks._after_step and not hooks._after_backward
    layer = nn.Linear(2, 1)
    model, optimizer = fabric.setup(layer, torch.optim.SGD(layer.parameters(), lr=0.1))
    fabric.backward(model(torch.ones(1, 2)).sum())
    optimizer.step()
    assert events.seen == ["before_backward", "after_step"]
    assert [name for name, _ in tracer.calls].count("fabric_backward") == 1

    # Unregistering re-plans: the wrapper gone, backward is direct again.
    hooks.unregister(tracer)
    assert hooks._direct_backward is not None
