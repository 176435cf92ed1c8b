"""One DeepSpeed engine per ``fabric.setup`` call, and finding the engine a call is for.

The strategy keeps an :class:`EngineRecord` per engine: the engine, the user's model and
optimizer it was made from, and the per-step state Fabric's API needs on top of DeepSpeed
(clipping for one step, gradient accumulation). :func:`initialize_engine` makes one;
:func:`record_for_module`, :func:`record_for_optimizer` and :func:`record_for_loss` find the
one a ``fabric.backward``, ``optimizer.step()`` or ``fabric.clip_gradients`` is for, with an
error naming what to pass when none or several fit; :func:`models_in` finds the models of a
checkpoint state. The training step's work on an engine is in
:mod:`fabric_deepspeed.training_step`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn import Module
from torch.optim import Optimizer

from fabric_deepspeed._imports import import_deepspeed


@dataclass
class EngineRecord:
    """One ``deepspeed.initialize`` result, with the user's objects it was made from."""

    engine: Any
    module: Module
    optimizer: Optimizer | None
    #: ``gradient_clipping`` of the engine's config (what a step clips to unless told otherwise)
    clipping: float
    #: whether the user's config set ``gradient_clipping`` (so a different max_norm is a conflict)
    clipping_from_user: bool

    #: inside ``fabric.no_backward_sync``: backward passes are not an accumulation boundary
    accumulating: bool = False
    #: backward passes at an accumulation boundary since the last step
    boundary_passes: int = 0

    def owns(self, optimizer: object) -> bool:
        """Whether ``optimizer`` is this engine's: the user's, or DeepSpeed's wrapper around it."""
        return self.optimizer is not None and (optimizer is self.optimizer or optimizer is self.engine.optimizer)


def initialize_engine(
    strategy_name: str,
    config: dict[str, Any],
    module: Module,
    optimizer: Optimizer | None,
    device: torch.device,
    clipping_from_user: bool,
) -> EngineRecord:
    """``deepspeed.initialize`` for ``module`` and ``optimizer`` (or none) on ``device``, with ``config``.

    The process group and DeepSpeed's communication layer exist already (the strategy's
    ``setup_environment``), so DeepSpeed is told not to initialise them.
    """
    deepspeed = import_deepspeed(strategy_name)
    args = argparse.Namespace(device_rank=device.index) if device.type == "cuda" else None
    engine, _, _, _ = deepspeed.initialize(
        args=args,
        config=config,
        model=module,
        model_parameters=[p for p in module.parameters() if p.requires_grad],
        optimizer=optimizer,
        dist_init_required=False,
    )
    clipping = float(config.get("gradient_clipping", 0.0))
    return EngineRecord(engine, module, optimizer, clipping, clipping_from_user)


def one_optimizer(records: Sequence[EngineRecord], optimizers: list[Optimizer]) -> Optimizer | None:
    """The optimizer of a ``fabric.setup(model, ...)`` call: none, or one not set up before (an engine steps one)."""
    if len(optimizers) > 1:
        raise ValueError(
            f"fabric.setup(model, {', '.join(type(o).__name__ for o in optimizers)}): a DeepSpeed engine drives "
            f"one optimizer, but {len(optimizers)} were given. Give each model its own optimizer, in its own "
            "fabric.setup(model, optimizer) call."
        )
    optimizer = optimizers[0] if optimizers else None
    for record in records:
        if optimizer is not None and record.owns(optimizer):
            raise ValueError("This optimizer already belongs to a DeepSpeed model set up before.")
    return optimizer


def destroy_engines(records: list[EngineRecord]) -> None:
    """Release each engine (``engine.destroy()``, where DeepSpeed has it) and forget them all."""
    for record in records:
        destroy = getattr(record.engine, "destroy", None)
        if callable(destroy):
            try:
                destroy()
            except Exception:  # teardown goes on; the engine is gone either way
                pass
    records.clear()


def models_in(records: Sequence[EngineRecord], state: dict[str, Any]) -> list[tuple[str, EngineRecord]]:
    """The keys of ``state`` that hold a DeepSpeed model (the user's or the engine), with its record."""
    found = []
    for key, obj in state.items():
        if isinstance(obj, Module):
            for record in records:
                if obj is record.module or obj is record.engine:
                    found.append((key, record))
    return found


def record_for_module(records: Sequence[EngineRecord], module: Module | None, what: str) -> EngineRecord:
    """The record of ``module`` (the user's model or its engine); with ``None``, the only one.

    :param what: the call, for messages (``"fabric.backward()"``).
    """
    for record in records:
        if module is record.engine or module is record.module:
            return record
    if module is None:
        if len(records) == 1:
            return records[0]
        if not records:
            raise RuntimeError(f"{what}: no model was set up. Call fabric.setup(model, optimizer) first.")
        raise ValueError(
            f"{what}: {len(records)} DeepSpeed models are set up, and each has its own engine. Say which "
            "one this is for: fabric.backward(loss, model=generator)."
        )
    raise ValueError(
        f"{what}: {type(module).__name__} was not set up by this Fabric's DeepSpeed strategy. Pass the model "
        "that fabric.setup() returned."
    )


def record_for_optimizer(records: Sequence[EngineRecord], optimizer: Optimizer) -> EngineRecord:
    """The record whose engine steps ``optimizer`` (the user's or DeepSpeed's)."""
    for record in records:
        if record.owns(optimizer):
            return record
    raise ValueError(
        f"{type(optimizer).__name__} was not set up with a model by this Fabric's DeepSpeed strategy. Set it up "
        "together with its model: fabric.setup(model, optimizer)."
    )


def record_for_loss(records: Sequence[EngineRecord], loss: Tensor, module: Module | None) -> EngineRecord:
    """With several engines: the one whose parameters ``loss`` reaches, checked against ``model=``.

    A loss must reach one engine's parameters only: DeepSpeed's hooks on another
    engine's parameters would take the stray gradients into that engine's buffers,
    outside its own backward, and its next step would use them (or fail). Walking the
    graph before the backward pass turns that into a clear error, and finds the engine
    when ``model=`` is not given.
    """
    given = None if module is None else record_for_module(records, module, "fabric.backward()")
    reached = records_reached(records, loss)
    if given is not None:
        others = [record for record in reached if record is not given]
        if others:
            names = ", ".join(type(record.module).__name__ for record in others)
            raise ValueError(
                f"fabric.backward(loss, model={type(given.module).__name__}): the loss also depends on parameters "
                f"of another DeepSpeed model ({names}), whose engine would take these gradients into its next "
                "step. Freeze that model while computing this loss (model.requires_grad_(False), then back to "
                "True), or detach its output, as in a GAN's generator step."
            )
        return given
    if len(reached) == 1:
        return reached[0]
    names = ", ".join(type(record.module).__name__ for record in reached) or "none of them"
    raise ValueError(
        f"fabric.backward(loss): {len(records)} DeepSpeed models are set up and this loss reaches the "
        f"parameters of {names}. A backward pass must belong to one model: pass it as "
        "fabric.backward(loss, model=...), and freeze the other models while computing this loss."
    )


def records_reached(records: Sequence[EngineRecord], loss: Tensor) -> list[EngineRecord]:
    """The engines whose trainable parameters ``loss`` reaches through its autograd graph, in order found."""
    owners = {id(param): record for record in records for param in record.module.parameters() if param.requires_grad}
    reached: list[EngineRecord] = []
    seen: set[int] = set()
    stack = [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        record = owners.get(id(getattr(node, "variable", None)))
        if record is not None and all(record is not other for other in reached):
            reached.append(record)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return reached
