"""Re-pointing optimizers at a model's sharded parameters (FSDP and model parallel).

Sharding replaces a model's parameters with new (DTensor) ones, so an optimizer made
before it would update tensors nobody uses. ``fabric.setup(model, optimizer)`` therefore
runs, around the strategy's ``setup_module``:

1. :func:`parameter_names` (before): each optimizer parameter's name in the model, refusing
   an optimizer that already stepped or holds parameters of another model;
2. :func:`repoint` (after): each param group's ``params`` replaced by the sharded
   parameters of the same names.

``fabric.setup_optimizers`` after ``setup_module`` uses :func:`check_owned` instead: an
optimizer must hold the parameters of a model set up by the strategy.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch.nn import Module
from torch.optim import Optimizer

#: activation checkpointing inserts this wrapper level into parameter names
_CHECKPOINT_PREFIX = "_checkpoint_wrapped_module."


def parameter_names(module: Module, optimizers: list[Optimizer]) -> list[list[str]]:
    """Per param group of every optimizer, the names of its parameters in ``module``."""
    names = {id(p): name for name, p in module.named_parameters()}
    for optimizer in optimizers:
        if optimizer.state:
            raise RuntimeError(
                f"The {type(optimizer).__name__} passed to fabric.setup() has already stepped, so its state "
                "cannot follow the parameters into their shards. Create the optimizer fresh, or set up the "
                "model first (fabric.setup_module) and create the optimizer from its parameters."
            )
        for group in optimizer.param_groups:
            unknown = [p for p in group["params"] if id(p) not in names]
            if unknown:
                raise ValueError(
                    f"The {type(optimizer).__name__} passed to fabric.setup() holds {len(unknown)} parameter(s) "
                    "that are not in the model set up with it. With FSDP, set up each model with its own "
                    "optimizer."
                )
    return [[names[id(p)] for p in group["params"]] for optimizer in optimizers for group in optimizer.param_groups]


def repoint(module: Module, optimizers: list[Optimizer], order: list[list[str]]) -> None:
    """Point each param group at ``module``'s (sharded) parameters named in ``order``."""
    sharded = {name.replace(_CHECKPOINT_PREFIX, ""): p for name, p in module.named_parameters()}
    groups = [group for optimizer in optimizers for group in optimizer.param_groups]
    for group, group_names in zip(groups, order, strict=True):
        group["params"] = [sharded[name] for name in group_names]


def check_owned(optimizer: Optimizer, modules: Iterable[Module]) -> None:
    """Refuse an optimizer holding parameters of no model set up with the strategy."""
    known = {id(p) for module in modules for p in module.parameters()}
    foreign = [p for group in optimizer.param_groups for p in group["params"] if id(p) not in known]
    if foreign:
        raise ValueError(
            f"The {type(optimizer).__name__} passed to fabric.setup_optimizers() holds {len(foreign)} "
            "parameter(s) that belong to no model set up with this strategy. Setting up a model replaces its "
            "parameters with sharded ones, so an optimizer made before would never train it. Create the "
            "optimizer from the parameters of the model that fabric.setup_module() returned, or pass both to "
            "fabric.setup(model, optimizer)."
        )
