"""The hook-wrapper suite: a plugin that wraps the strategy's hooks changes nothing it wraps.

A wrapper (``@hookimpl(wrapper=True)`` on ``fabric_backward``, ``fabric_save_checkpoint``,
...) runs code before and after the strategy: to time, trace, upload or inspect. It must
hand back what the strategy returned, and let the strategy's errors through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from fabric_core import hookspecs
from fabric_core.fabric import Fabric
from fabric_core.strategies.single_device import SingleDeviceStrategy
from fabric_core.testing.checks import check_checkpoint_round_trip
from fabric_core.testing.conformance._runs import train

__all__ = ["HookWrapperConformance"]


class StrategyRefusal(Exception):
    """Raised by the suite's strategy inside a hook; the wrapper must let it through unchanged."""


class _RefusingStrategy(SingleDeviceStrategy):
    """A single-device strategy whose method behind ``refuse`` (a hook name) raises :class:`StrategyRefusal`."""

    def __init__(self, refuse: str) -> None:
        super().__init__(device="cpu")
        self.refuse = refuse
        self.error = StrategyRefusal(f"the strategy refused {refuse}")

    def _maybe_refuse(self, hook: str) -> None:
        if hook == self.refuse:
            raise self.error

    def setup_module(self, module: nn.Module) -> nn.Module:
        self._maybe_refuse("fabric_setup_model")
        return super().setup_module(module)

    def setup_optimizer(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        self._maybe_refuse("fabric_setup_optimizer")
        return super().setup_optimizer(optimizer)

    def backward(self, tensor: torch.Tensor, module: nn.Module | None, *args: Any, **kwargs: Any) -> None:
        self._maybe_refuse("fabric_backward")
        super().backward(tensor, module, *args, **kwargs)

    def optimizer_step(self, optimizer: torch.optim.Optimizer, **kwargs: Any) -> Any:
        self._maybe_refuse("fabric_optimizer_step")
        return super().optimizer_step(optimizer, **kwargs)

    def save_checkpoint(
        self, path: Any, state: dict[str, Any], filter: Any = None, storage_options: Any = None
    ) -> None:
        self._maybe_refuse("fabric_save_checkpoint")
        super().save_checkpoint(path, state, filter=filter, storage_options=storage_options)

    def load_checkpoint(self, path: Any, state: Any = None, strict: bool = True, weights_only: Any = None) -> Any:
        self._maybe_refuse("fabric_load_checkpoint")
        return super().load_checkpoint(path, state, strict=strict, weights_only=weights_only)


def _trigger(fabric: Fabric, hook: str, folder: Path) -> None:
    """Make ``fabric`` call ``hook`` once (the calls before it succeed)."""
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    if hook == "fabric_setup_optimizer":
        fabric.setup_module(model)
        fabric.setup_optimizers(optimizer)
        return
    model, optimizer = fabric.setup(model, optimizer)
    if hook in ("fabric_backward", "fabric_optimizer_step"):
        fabric.backward(model(torch.randn(3, 4)).sum())
        optimizer.step()
    elif hook in ("fabric_save_checkpoint", "fabric_load_checkpoint"):
        fabric.save(folder / "checkpoint.pt", {"model": model})
        fabric.load(folder / "checkpoint.pt", {"model": model})


class HookWrapperConformance:
    """For objects in ``Fabric(plugins=[...])`` that wrap single-owner hooks. Implement :meth:`make_plugin`."""

    def make_plugin(self) -> object:
        """A new instance of the plugin."""
        raise NotImplementedError("Return your plugin object from make_plugin().")

    def wrapped_hooks(self) -> list[str]:
        """The single-owner hooks the plugin implements (all must be wrappers)."""
        plugin = self.make_plugin()
        return [hook for hook in hookspecs.SINGLE_OWNER_HOOKS if callable(getattr(plugin, hook, None))]

    def test_wraps_and_answers_nothing(self) -> None:
        plugin = self.make_plugin()
        hooks = self.wrapped_hooks()
        assert hooks, f"{type(plugin).__name__} implements none of {', '.join(hookspecs.SINGLE_OWNER_HOOKS)}"
        for hook in hooks:
            opts = getattr(getattr(plugin, hook), f"{hookspecs.PROJECT_NAME}_impl", None) or {}
            assert opts.get("wrapper") or opts.get("hookwrapper"), (
                f"{type(plugin).__name__}.{hook} is not marked @hookimpl(wrapper=True): only the strategy may answer it"
            )
        Fabric(accelerator="cpu", plugins=[plugin])  # registers and validates it

    def test_training_and_checkpoints_are_unchanged(self, tmp_path: Path) -> None:
        without = train(Fabric(accelerator="cpu"), tmp_path / "without")
        wrapped = train(Fabric(accelerator="cpu", plugins=[self.make_plugin()]), tmp_path / "with")
        assert wrapped == without, f"losses {wrapped} with the plugin, {without} without"
        check_checkpoint_round_trip(Fabric(accelerator="cpu", plugins=[self.make_plugin()]), tmp_path / "round.pt")

    def test_the_step_returns_what_the_optimizer_returned(self) -> None:
        fabric = Fabric(accelerator="cpu", plugins=[self.make_plugin()])
        model = nn.Linear(4, 2)
        model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.1))
        seen: list[torch.Tensor] = []

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss: torch.Tensor = model(torch.ones(2, 4)).sum()
            fabric.backward(loss)
            seen.append(loss)
            return loss

        returned: object = optimizer.step(closure)
        assert returned is seen[-1], f"optimizer.step(closure) returned {returned!r}, not the closure's loss"

    @pytest.fixture
    def refusing(self) -> Callable[[str], tuple[Fabric, StrategyRefusal]]:
        def make(hook: str) -> tuple[Fabric, StrategyRefusal]:
            strategy = _RefusingStrategy(hook)
            return Fabric(accelerator="cpu", strategy=strategy, plugins=[self.make_plugin()]), strategy.error

        return make

    def test_errors_of_the_strategy_come_through_unchanged(
        self, refusing: Callable[[str], tuple[Fabric, StrategyRefusal]], tmp_path: Path
    ) -> None:
        for hook in self.wrapped_hooks():
            fabric, error = refusing(hook)
            with pytest.raises(StrategyRefusal) as raised:
                _trigger(fabric, hook, tmp_path)
            assert raised.value is error, f"{hook}: the strategy's error became {raised.value!r}"
