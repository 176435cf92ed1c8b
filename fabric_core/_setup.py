"""What ``fabric.setup``, ``setup_module``, ``setup_optimizers`` and ``setup_dataloaders`` do.

:func:`setup_model` is the one path of ``setup`` and ``setup_module``: convert the model to
the precision, move it to the device, let the strategy wrap it (``fabric_setup_model``),
and wrap the results in :class:`~fabric_core.wrappers.FabricModule` and
:class:`~fabric_core.wrappers.FabricOptimizer`. :func:`setup_dataloader` adds the
distributed sampler and worker seeding and wraps a dataloader.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch.nn import Module
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from fabric_core.data import distribute_dataloader
from fabric_core.utilities.seed import worker_init_function
from fabric_core.wrappers import FabricDataLoader, FabricModule, FabricOptimizer

if TYPE_CHECKING:
    from fabric_core._plugin_manager import FabricHooks
    from fabric_core.precision.precision import Precision
    from fabric_core.strategies.strategy import Strategy


def setup_model(
    hooks: FabricHooks,
    strategy: Strategy,
    precision: Precision,
    module: Module,
    optimizers: list[Optimizer],
    scheduler: Any,
    move_to_device: bool,
) -> tuple[FabricModule, list[FabricOptimizer], Any]:
    """Prepare ``module``, let the strategy set it up with its optimizers, and wrap what it returns.

    A ``torch.compile``'d module is converted and moved through the module inside it, and
    that inner module is the user's model of the wrapper (its state dict has no
    ``_orig_mod.`` prefix).
    """
    inner = getattr(module, "_orig_mod", module)
    precision.convert_module(inner)
    if move_to_device:
        strategy.module_to_device(inner)
    forward_module, new_optimizers, scheduler = hooks.setup_model(module, optimizers, scheduler)
    wrapped = FabricModule(forward_module, strategy, original_module=inner)
    return wrapped, [FabricOptimizer(optimizer, strategy, hooks) for optimizer in new_optimizers], scheduler


def setup_optimizer(hooks: FabricHooks, strategy: Strategy, optimizer: Optimizer) -> FabricOptimizer:
    """Let the strategy set up an optimizer of a model set up before, and wrap it."""
    return FabricOptimizer(hooks.setup_optimizer(optimizer), strategy, hooks)


def connect_lightning_module(
    fabric: Any, module: Module, optimizers: list[FabricOptimizer], callbacks: list[Any]
) -> None:
    """Give a LightningModule-style model its Fabric, as Lightning Fabric does (duck typed).

    A model with a ``_fabric`` attribute gets ``fabric`` there (its ``self.log``,
    ``self.logger`` and ``self.optimizers()`` use it) and its optimizers in
    ``_fabric_optimizers``, and joins ``callbacks``: ``fabric.call("on_train_start")``
    reaches its ``on_*`` methods.
    """
    if not hasattr(module, "_fabric"):
        return
    # Plain attributes (nn.Module's __setattr__ would store them the same way); mypy would
    # type them as parameters or submodules.
    object.__setattr__(module, "_fabric", fabric)
    object.__setattr__(module, "_fabric_optimizers", optimizers)
    if not any(callback is module for callback in callbacks):
        callbacks.append(module)


def setup_dataloader(
    strategy: Strategy, dataloader: DataLoader, use_distributed_sampler: bool, device: torch.device | None
) -> FabricDataLoader:
    """Seed its workers when asked (``PL_SEED_WORKERS``), let the strategy process it, add the
    distributed sampler, and wrap it to move batches to ``device``."""
    if os.environ.get("PL_SEED_WORKERS") == "1" and dataloader.worker_init_fn is None:
        dataloader.worker_init_fn = seeded_worker_init(strategy.global_rank)
    processed = strategy.process_dataloader(dataloader)
    sampler_kwargs = strategy.distributed_sampler_kwargs
    if use_distributed_sampler and sampler_kwargs is not None:
        processed = distribute_dataloader(processed, **sampler_kwargs)
    return FabricDataLoader(processed, device=device, strategy=strategy)


def seeded_worker_init(rank: int) -> Callable[[int], None]:
    """The ``worker_init_fn`` that seeds each worker of ``rank`` on its own."""
    # A partial, not a closure: it must pickle for workers started with "spawn".
    return functools.partial(worker_init_function, rank=rank)
