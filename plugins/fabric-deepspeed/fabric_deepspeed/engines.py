"""One DeepSpeed engine per ``fabric.setup`` call, and what the strategy does with each.

The strategy keeps an :class:`EngineRecord` per engine: the engine, the user's model and
optimizer it was made from, and the per-step state Fabric's API needs on top of DeepSpeed
(clipping for one step, gradient accumulation). The functions below are the pieces of the
training step that reach into an engine: which engines a loss reaches, the accumulation
boundary, the clipping value and the gradient norm.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn import Module
from torch.optim import Optimizer


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


def records_reached(records: list[EngineRecord], loss: Tensor) -> list[EngineRecord]:
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


@contextmanager
def not_a_boundary(record: EngineRecord) -> Iterator[None]:
    """Backward passes inside are not a gradient-accumulation boundary (``fabric.no_backward_sync``).

    DeepSpeed's ``engine.set_gradient_accumulation_boundary(False)``: gradients accumulate (ZeRO
    stages 2 and 3 still reduce them into their partitions as they come) and the next backward
    pass outside completes the accumulation. Leaving restores DeepSpeed's own counting.
    """
    if record.accumulating:
        yield
        return
    engine = record.engine
    record.accumulating = True
    engine.set_gradient_accumulation_boundary(False)
    try:
        yield
    finally:
        record.accumulating = False
        # None: back to DeepSpeed's own counting (with gradient_accumulation_steps=1, every pass is a boundary).
        engine._is_gradient_accumulation_boundary = None
        if hasattr(engine.optimizer, "set_gradient_accumulation_boundary"):
            engine.optimizer.set_gradient_accumulation_boundary(True)


def set_clipping(record: EngineRecord, value: float) -> None:
    """Make the engine's next step clip gradients to the global L2 norm ``value`` (0: no clipping)."""
    engine = record.engine
    engine._config.gradient_clipping = value  # read by the engine's step without ZeRO
    if hasattr(engine.optimizer, "clip_grad"):
        engine.optimizer.clip_grad = value  # read by the ZeRO and bf16 optimizers' step


def gradient_norm(record: EngineRecord, device: torch.device) -> Tensor:
    """The global L2 norm of the gradients the coming step will use, computed as DeepSpeed computes it."""
    engine = record.engine
    optimizer = engine.optimizer
    loss_scale = float(getattr(optimizer, "loss_scale", 1.0) or 1.0)
    if hasattr(optimizer, "scaled_global_norm"):  # ZeRO stages 1 and 2
        norm = optimizer.scaled_global_norm()
    elif hasattr(optimizer, "_get_norm_groups"):  # ZeRO stage 3
        from deepspeed.runtime.utils import combine_grad_norm_groups

        norm = combine_grad_norm_groups(optimizer._get_norm_groups())
    else:  # no ZeRO: gradients are reduced in place on the parameters
        grads = [p.grad for p in record.module.parameters() if p.grad is not None]
        if not grads:
            return torch.tensor(0.0, device=device)
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
    norm = norm if isinstance(norm, Tensor) else torch.tensor(float(norm))
    # DeepSpeed sums norms in float64; give it back as torch's clip_grad_norm_ does, in float32.
    return (norm.double() / loss_scale).to(device=device, dtype=torch.float32)
