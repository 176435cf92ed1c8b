"""Micro-benchmarks of the per-step hot path: what each Fabric call adds over the direct call.

``benchmarks/overhead.py`` measures the whole step; this script takes it apart. Each
call is made on objects whose own work is (nearly) nothing, so the time left is the
dispatch cost Fabric adds:

* forward: ``FabricModule(x)`` vs ``module(x)`` for an ``nn.Identity`` (for ``bf16-mixed``
  the direct call runs under a hand-written ``torch.autocast`` and casts the output back);
* backward: ``fabric.backward(loss)`` vs ``loss.backward()`` for a stand-in loss whose
  ``backward`` does nothing, and each layer on the way (``FabricHooks.backward``, the
  pluggy hook call, ``Strategy.fabric_backward``, ``Strategy.backward``,
  ``Precision.backward``);
* step: ``FabricOptimizer.step()`` vs ``optimizer.step()`` for an optimizer whose step
  does nothing (torch's step hook wrapper still runs), layer by layer the same way;
* zero_grad: ``FabricOptimizer.zero_grad()`` vs ``optimizer.zero_grad()``.

Fabric and direct samples are interleaved; each figure is the median over repeats of the
time per call, in microseconds. A measurement, not a test: nothing here asserts.

Run from the repository root::

    python benchmarks/hot_path.py
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, cast

import torch
from _common import compare_calls
from torch import Tensor, nn
from torch.optim import Optimizer

from fabric_core import Fabric


class StandInLoss:
    """Has the ``backward`` a loss tensor has, doing nothing."""

    def backward(self, *args: Any, **kwargs: Any) -> None:
        return None


class NoopOptimizer(Optimizer):
    """A real ``torch.optim.Optimizer`` (step hooks and profiling wrapper included) whose step does nothing."""

    def __init__(self, params: Any) -> None:
        super().__init__(params, {})

    def step(self, closure: Any = None) -> Any:
        return None


def direct_forward(module: nn.Module, x: Tensor, precision: str) -> Callable[[], Any]:
    """The hand-written forward: plain, or under autocast with the output cast back to float32."""
    if precision == "bf16-mixed":

        def autocast_call() -> Any:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                output = module(x)
            return output.float()

        return autocast_call
    return lambda: module(x)


def build(precision: str) -> tuple[Fabric, nn.Module, Any, nn.Module, Optimizer]:
    fabric = Fabric(accelerator="cpu", devices=1, precision=precision)
    module = nn.Identity()
    optimizer = NoopOptimizer([torch.zeros(1, requires_grad=True)])
    fabric_module, fabric_optimizer = fabric.setup(module, optimizer)
    return fabric, fabric_module, fabric_optimizer, module, optimizer


def measure(precision: str, number: int, repeat: int) -> dict[str, dict[str, float]]:
    fabric, fabric_module, fabric_optimizer, module, optimizer = build(precision)
    strategy = fabric.strategy
    precision_plugin = strategy.precision
    hooks = fabric._hooks
    hook = hooks._hook
    x = torch.zeros(4, 4)
    loss = cast(Tensor, StandInLoss())  # typed as the tensor it stands in for
    no_args: tuple[Any, ...] = ()
    no_kwargs: dict[str, Any] = {}

    results: dict[str, dict[str, float]] = {}
    results["forward"] = compare_calls(
        {
            "module(x)  [direct]": direct_forward(module, x, precision),
            "module.forward(x)": lambda: module.forward(x),
            "FabricModule.forward(x)": lambda: fabric_module.forward(x),
            "fabric_module(x)  [Fabric]": lambda: fabric_module(x),
        },
        number,
        repeat,
    )
    results["backward"] = compare_calls(
        {
            "loss.backward()  [direct]": lambda: loss.backward(),  # type: ignore[no-untyped-call]
            "Precision.backward": lambda: precision_plugin.backward(loss, None),
            "Strategy.backward": lambda: strategy.backward(loss, None),
            "Strategy.fabric_backward": lambda: strategy.fabric_backward(loss, None, no_args, no_kwargs),
            "pm.hook.fabric_backward": lambda: hook.fabric_backward(
                fabric=fabric, tensor=loss, module=None, args=no_args, kwargs=no_kwargs
            ),
            "FabricHooks.backward": lambda: hooks.backward(loss, None, no_args, no_kwargs),
            "fabric.backward(loss)  [Fabric]": lambda: fabric.backward(loss),
        },
        number,
        repeat,
    )
    results["step"] = compare_calls(
        {
            "optimizer.step()  [direct]": lambda: optimizer.step(),
            "Precision.optimizer_step": lambda: precision_plugin.optimizer_step(optimizer),
            "Strategy.optimizer_step": lambda: strategy.optimizer_step(optimizer),
            "Strategy.fabric_optimizer_step": lambda: strategy.fabric_optimizer_step(optimizer, no_kwargs),
            "pm.hook.fabric_optimizer_step": lambda: hook.fabric_optimizer_step(
                fabric=fabric, optimizer=optimizer, kwargs=no_kwargs
            ),
            "FabricHooks.optimizer_step": lambda: hooks.optimizer_step(optimizer, no_kwargs),
            "fabric_optimizer.step()  [Fabric]": lambda: fabric_optimizer.step(),
        },
        number,
        repeat,
    )
    results["zero_grad"] = compare_calls(
        {
            "optimizer.zero_grad()  [direct]": lambda: optimizer.zero_grad(),
            "fabric_optimizer.zero_grad()  [Fabric]": lambda: fabric_optimizer.zero_grad(),
        },
        number,
        repeat,
    )
    return results


def report(precision: str, results: dict[str, dict[str, float]]) -> str:
    lines = [f"fabric-core hot path, precision={precision}  (median µs per call; +µs over the direct call)"]
    total = 0.0
    for group, figures in results.items():
        direct = next(value for name, value in figures.items() if name.endswith("[direct]"))
        lines.append(f"{group}:")
        for name, value in figures.items():
            lines.append(f"  {name:<42}{value:>8.2f}{value - direct:>+9.2f}")
            if name.endswith("[Fabric]"):
                total += value - direct
    lines.append(f"total added per step (forward + backward + step + zero_grad): {total:+.2f} µs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Per-call cost of Fabric's hot path against direct calls.")
    parser.add_argument("--precision", default="32-true", choices=("32-true", "bf16-mixed"))
    parser.add_argument("--number", type=int, default=20_000, help="calls per sample (default 20000)")
    parser.add_argument("--repeat", type=int, default=7, help="samples per case (default 7)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the text report")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = measure(args.precision, args.number, args.repeat)
    if args.json:
        print(json.dumps({"precision": args.precision, "results": results}, indent=2))
    else:
        print(report(args.precision, results))


if __name__ == "__main__":
    main()
