"""The training step on an engine: accumulation boundaries, clipping for one step, the gradient norm.

Fabric's training step is ``fabric.backward(loss)``, optionally ``fabric.clip_gradients``,
then ``optimizer.step()``; DeepSpeed's is ``engine.backward(loss)`` then ``engine.step()``,
with accumulation and clipping set in its config. The functions here bridge the two, on
one :class:`~fabric_deepspeed.engines.EngineRecord`: :func:`check_boundary` before a
backward pass, :func:`not_a_boundary` for ``fabric.no_backward_sync``, :func:`check_clipping`,
:func:`set_clipping` and :func:`gradient_norm` for ``fabric.clip_gradients``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from fabric_deepspeed.engines import EngineRecord


def check_boundary(record: EngineRecord, zero_stage: int, strategy_name: str) -> None:
    """Refuse a second backward pass at an accumulation boundary before the step, under ZeRO stages 1 and 2."""
    if not record.accumulating and record.boundary_passes and zero_stage in (1, 2):
        raise RuntimeError(
            f"fabric.backward() was called again before optimizer.step() with strategy={strategy_name!r}. ZeRO stages "
            "1 and 2 reduce the gradients at the end of each backward pass, and a second reduction before the "
            "step would be wrong. To accumulate gradients, run all but the last backward pass of a step inside "
            "`with fabric.no_backward_sync(model):`."
        )


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


def check_step(kwargs: dict[str, Any], strategy_name: str) -> None:
    """Refuse ``optimizer.step(closure=...)``: DeepSpeed's ``engine.step()`` takes none."""
    if kwargs.get("closure") is not None:
        raise ValueError(
            f"optimizer.step(closure=...) cannot run with strategy={strategy_name!r}: DeepSpeed's engine.step() "
            "takes no closure. Compute the loss and call fabric.backward(loss) before optimizer.step()."
        )


def check_clipping(
    record: EngineRecord,
    optimizer: Optimizer,
    max_norm: float | int,
    norm_type: float | int,
    strategy_name: str,
    config_source: str,
) -> None:
    """Refuse a ``fabric.clip_gradients(model, optimizer, max_norm=...)`` that DeepSpeed cannot do, saying why."""
    if float(norm_type) != 2.0:
        raise ValueError(
            f"fabric.clip_gradients(norm_type={norm_type!r}) cannot run with strategy={strategy_name!r}: DeepSpeed "
            "clips by the L2 norm of all gradients only. Use norm_type=2."
        )
    if record.optimizer is None:
        raise ValueError(
            "fabric.clip_gradients(): this DeepSpeed model was set up without an optimizer, so nothing steps "
            "with its gradients. Set it up with fabric.setup(model, optimizer)."
        )
    if not record.owns(optimizer):
        raise ValueError(
            "fabric.clip_gradients(model, optimizer, ...): the optimizer is not the one set up with this model."
        )
    if record.clipping_from_user and float(max_norm) != record.clipping:
        raise ValueError(
            f"fabric.clip_gradients(max_norm={max_norm}) contradicts gradient_clipping={record.clipping} in the "
            f"DeepSpeed config ({config_source}). Remove gradient_clipping from the config (or set it to "
            '"auto") to clip from the training loop, or stop calling fabric.clip_gradients.'
        )
    if max_norm <= 0:
        raise ValueError(f"fabric.clip_gradients(max_norm={max_norm}): max_norm must be positive.")


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
