"""Sharding steps of FSDPStrategy, in the order ``setup_module`` runs them.

1. :func:`fully_shard_options`: the keyword arguments for ``fully_shard`` (mesh, resharding,
   mixed-precision and offload policies, then the user's own ``fully_shard`` arguments);
2. :func:`shard`: activation checkpointing, then ``fully_shard`` on each submodule the wrap
   policy picks (children first), then on the root;
3. :func:`materialize`: a model built on the meta device gets real, sharded storage.

Also: :func:`as_policy` (a set of classes or a function, as a predicate),
:func:`check_fully_shard_arguments` (the user's extra arguments, checked against
``fully_shard``'s own signature) and :func:`skip_gradient_sync` (``no_backward_sync``).
FSDP modules are imported when used, never at import.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any

import torch
from torch.nn import Module

#: the module and mesh are the strategy's to give; everything else ``fully_shard`` takes is the user's
_OWN_ARGUMENTS = ("module", "mesh")
_HALF = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16, "16-true": torch.float16, "bf16-true": torch.bfloat16}


def as_policy(policy: Any, argument: str) -> Callable[[Module], bool] | None:
    """A predicate over modules from a set of ``nn.Module`` classes or a function; ``None`` stays ``None``."""
    if policy is None:
        return None
    if isinstance(policy, (set, frozenset, list, tuple)):
        classes = tuple(policy)
        if not all(isinstance(cls, type) and issubclass(cls, Module) for cls in classes):
            raise TypeError(f"FSDPStrategy({argument}=...): expected a set of nn.Module classes, got {policy!r}.")
        return lambda module: isinstance(module, classes)
    if callable(policy):
        return policy  # type: ignore[no-any-return]
    raise TypeError(
        f"FSDPStrategy({argument}={policy!r}): expected a set of nn.Module classes or a function (module) -> bool."
    )


def check_fully_shard_arguments(kwargs: dict[str, Any]) -> None:
    """Refuse keyword arguments that ``torch.distributed.fsdp.fully_shard`` does not take."""
    if not kwargs:
        return
    from torch.distributed.fsdp import fully_shard

    accepted = [name for name in inspect.signature(fully_shard).parameters if name not in _OWN_ARGUMENTS]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"FSDPStrategy got unknown arguments {unknown}: besides its own, it takes the strategy components and "
            f"the keyword arguments of torch.distributed.fsdp.fully_shard ({', '.join(accepted)})."
        )


def fully_shard_options(
    mesh: Any, sharding: str, precision: str, cpu_offload: bool, device: torch.device, extra: dict[str, Any]
) -> dict[str, Any]:
    """``fully_shard``'s keyword arguments for this run; ``extra`` (the user's) wins."""
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy

    options: dict[str, Any] = {"mesh": mesh, "reshard_after_forward": sharding != "SHARD_GRAD_OP"}
    if precision in _HALF:
        half = _HALF[precision]
        # Mixed: float32 parameters (autocast does the low-precision math), low-precision
        # gradient reduction. True: everything in the low-precision dtype.
        param_dtype = half if precision.endswith("-true") else None
        options["mp_policy"] = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=half)
    if cpu_offload:
        # Pinned memory needs an accelerator; a CPU-only run has none to pin for.
        options["offload_policy"] = CPUOffloadPolicy(pin_memory=device.type != "cpu")
    options.update(extra)
    return options


def shard(
    module: Module,
    options: dict[str, Any],
    wrap_policy: Callable[[Module], bool] | None,
    checkpoint_policy: Callable[[Module], bool] | None,
) -> None:
    """Apply activation checkpointing, then ``fully_shard`` to the picked submodules and the root, in place."""
    from torch.distributed.fsdp import fully_shard

    if checkpoint_policy is not None:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing

        apply_activation_checkpointing(module, check_fn=checkpoint_policy)
    if wrap_policy is not None:
        # Children first: fully_shard on a parent groups whatever its children left.
        for submodule in reversed(list(module.modules())):
            if submodule is not module and wrap_policy(submodule):
                fully_shard(submodule, **options)
    fully_shard(module, **options)


def materialize(module: Module, device: torch.device) -> None:
    """Give a model built on the meta device real (sharded) storage on ``device`` and initial values."""
    if not any(t.is_meta for t in [*module.parameters(), *module.buffers()]):
        return
    module.to_empty(device=device)
    with torch.no_grad():
        for submodule in module.modules():
            reset = getattr(submodule, "reset_parameters", None)
            if callable(reset):
                reset()


@contextmanager
def skip_gradient_sync(module: Module, enabled: bool) -> Generator[None, None, None]:
    """``fabric.no_backward_sync`` for an FSDP2 model: no gradient reduce-scatter inside the block."""
    from torch.distributed.fsdp import FSDPModule

    if not isinstance(module, FSDPModule):
        raise TypeError(f"no_backward_sync() expected the FSDP model set up by this strategy, got {module}.")
    module.set_requires_gradient_sync(not enabled)
    try:
        yield
    finally:
        module.set_requires_gradient_sync(True)
