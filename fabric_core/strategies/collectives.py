"""Collectives over the default process group, with errors that name the operation.

Thin wrappers over ``torch.distributed``: what they add is the reduction names Fabric
accepts (``"mean"``, ``"sum"``, ...), gathering tensors whose first dimension differs per
rank, and a failure message that says which operation on which rank failed or timed out
(:class:`CollectiveError`, which carries the same as attributes).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

T = TypeVar("T")

_REDUCE_OPS = {
    "sum": dist.ReduceOp.SUM,
    "max": dist.ReduceOp.MAX,
    "min": dist.ReduceOp.MIN,
    "product": dist.ReduceOp.PRODUCT,
    "prod": dist.ReduceOp.PRODUCT,
}


class CollectiveError(RuntimeError):
    """A collective failed or timed out; the message names it and this rank.

    The error of the process group (torch's ``DistBackendError``, a gloo or NCCL
    ``RuntimeError``) is chained as ``__cause__``.

    :ivar operation: the Fabric call that failed, without ``fabric.`` and its arguments:
        ``"barrier"``, ``"broadcast"``, ``"all_reduce"``, ``"all_gather"``, ``"backward"``
        (the gradient all-reduce of DDP), ``"save"`` (a save not called on every rank); ``""``
        when not given.
    :ivar rank: the global rank that raised it, or ``None`` outside a process group.
    :ivar timed_out: whether the operation timed out (another rank did not reach it) rather
        than failed (another rank exited or lost its connection).
    :ivar missing_ranks: for a timeout, the ranks that never reached the operation, when the
        process group's store could tell; else ``None``.
    """

    def __init__(
        self,
        message: str = "",
        *,
        operation: str = "",
        rank: int | None = None,
        timed_out: bool = False,
        missing_ranks: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.rank = rank
        self.timed_out = timed_out
        self.missing_ranks = missing_ranks


#: how long a rank whose collective timed out waits for the others that timed out too, to tell who never came
_ARRIVAL_GRACE_SECONDS = 3.0
_TIMEOUT_WORDS = ("timeout", "timed out", "failed to pass monitoredbarrier")
_PEER_WORDS = ("gloo", "nccl", "connection reset", "connection closed", "broken pipe", "connection refused")
#: what a process group says when it lost another rank (checked before the refusal words)
_LOST_PEER_WORDS = ("connection", "broken pipe", "closed by peer", "remote process", "aborted", "socket")
#: what a process group says when it refused this rank's call (a bad root rank, shape or type)
_REFUSED_WORDS = ("invalid", "expected", "cannot", "can't", "must be", "mismatch", "unsupported", "not support")


def is_collective_failure(err: BaseException) -> bool:
    """Whether ``err`` came from the process group (a timeout, a lost peer) rather than the user's code."""
    if isinstance(err, dist.DistError):
        return True
    text = str(err).lower()
    return any(word in text for word in _TIMEOUT_WORDS + _PEER_WORDS)


def describe_failure(operation: str, err: BaseException) -> CollectiveError:
    """One message for a failed collective: which operation, on which rank, why, and who never arrived.

    ``operation`` is how the message names it (``"fabric.all_reduce(reduce_op='mean')"``);
    the error's ``operation`` attribute is its first word without ``fabric.`` (``"all_reduce"``).
    Raise the result ``from err``, so that ``err`` is its ``__cause__``.
    """
    rank = dist.get_rank() if dist.is_initialized() else None
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    timed_out = any(word in text.lower() for word in _TIMEOUT_WORDS)
    missing = None
    if timed_out:
        missing = _ranks_that_never_arrived(operation)
        who = ""
        if missing:
            names = ", ".join(map(str, missing))
            who = f"rank{'s' if len(missing) > 1 else ''} {names} never arrived; "
        hint = (
            f"{who}another rank did not reach it in time: every rank must call the same collectives in the same order"
        )
    elif _refused_here(text):
        hint = (
            "the call was refused on this rank, no other rank is involved: check its arguments (a rank that "
            "does not exist, a tensor of a shape or type the operation does not take)"
        )
    else:
        hint = "another rank probably failed or exited; look for the first error above"
    return CollectiveError(
        f"{operation} failed on rank {'?' if rank is None else rank}: {hint} ({text}).",
        operation=_operation_name(operation),
        rank=rank,
        timed_out=timed_out,
        missing_ranks=None if missing is None else tuple(missing),
    )


def _refused_here(text: str) -> bool:
    """Whether a collective's error says it refused this rank's arguments rather than lost another rank."""
    lowered = text.lower()
    if any(word in lowered for word in _LOST_PEER_WORDS):
        return False
    return any(word in lowered for word in _REFUSED_WORDS)


def _operation_name(label: str) -> str:
    """The name of an operation label: ``"fabric.all_reduce(reduce_op='sum')"`` -> ``"all_reduce"``."""
    found = re.match(r"\s*(?:fabric\.)?(\w+)", label)
    return found.group(1) if found else ""


def _ranks_that_never_arrived(operation: str) -> list[int] | None:
    """The ranks that did not reach ``operation``, found through the process group's store.

    Every rank whose ``operation`` timed out writes that it arrived, then waits a few
    seconds for the others that timed out too; the ranks with no entry never got there.
    ``None`` when it cannot be known (no store, or the store's host is gone).
    """
    try:
        store = dist.distributed_c10d._get_default_store()
        world_size = dist.get_world_size()
        prefix = f"fabric/arrived/{operation}"
        store.set(f"{prefix}/{dist.get_rank()}", "1")
        deadline = time.monotonic() + _ARRIVAL_GRACE_SECONDS
        while True:
            missing = [rank for rank in range(world_size) if not store.check([f"{prefix}/{rank}"])]
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.1)
    except Exception:  # the message must come out even when the store cannot answer
        return None


def _guarded(operation: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except (RuntimeError, dist.DistError) as err:
        raise describe_failure(operation, err) from err


def barrier(name: str | None = None, timeout: timedelta | None = None) -> None:
    if not dist.is_initialized():
        return
    label = f"fabric.barrier({name!r})" if name else "fabric.barrier()"
    if dist.get_backend() == "gloo":
        # monitored_barrier names the ranks that did not arrive, where a plain barrier just hangs.
        _guarded(label, lambda: dist.monitored_barrier(timeout=timeout))
    else:
        _guarded(label, lambda: dist.barrier())


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not dist.is_initialized():
        return obj
    world_size = dist.get_world_size()
    if not 0 <= src < world_size:
        raise ValueError(
            f"fabric.broadcast(src={src}): there is no rank {src} in this run of {world_size} "
            f"process{'es' if world_size > 1 else ''} (ranks 0 to {world_size - 1}). Pass the global rank of the "
            "process that holds the object."
        )
    holder = [obj]
    _guarded(f"fabric.broadcast(src={src})", lambda: dist.broadcast_object_list(holder, src=src))
    return holder[0]


def all_reduce(tensor: Tensor, group: Any = None, reduce_op: Any = "mean") -> Tensor:
    if not dist.is_initialized():
        return tensor
    mean = isinstance(reduce_op, str) and reduce_op.lower() in ("mean", "avg")
    if isinstance(reduce_op, str) and not mean:
        if reduce_op.lower() not in _REDUCE_OPS:
            raise ValueError(
                f"all_reduce(reduce_op={reduce_op!r}): expected 'mean', 'sum', 'max', 'min', 'product' or a "
                "torch.distributed.ReduceOp."
            )
        op = _REDUCE_OPS[reduce_op.lower()]
    else:
        op = dist.ReduceOp.SUM if mean else reduce_op
    result = tensor.clone()
    if mean and not (result.is_floating_point() or result.is_complex()):
        result = result.to(torch.get_default_dtype())
    _guarded(f"fabric.all_reduce(reduce_op={reduce_op!r})", lambda: dist.all_reduce(result, op=op, group=group))
    if mean:  # gloo has no AVG: sum, then divide
        result = result / dist.get_world_size(group)
    return result


def all_gather(tensor: Tensor, group: Any = None, sync_grads: bool = False) -> Tensor | list[Tensor]:
    """Stack every rank's tensor on a new first dimension.

    When the first dimension differs between ranks, the result is a list with one tensor
    per rank instead (they cannot be stacked); other dimensions must match. With one
    process (no process group, or a group of one), the input comes back unchanged, without
    the new dimension, as it does from a single-device strategy (the documented rule).
    """
    if not dist.is_initialized():
        return tensor
    world_size = dist.get_world_size(group)
    if world_size == 1:
        return tensor
    tensor = tensor.contiguous()
    local_size = torch.tensor(tensor.shape[:1] or (1,), device=tensor.device)
    sizes = [torch.zeros_like(local_size) for _ in range(world_size)]
    _guarded("fabric.all_gather (sizes)", lambda: dist.all_gather(sizes, local_size, group=group))
    lengths = [int(size.item()) for size in sizes]
    uneven = tensor.dim() > 0 and len(set(lengths)) > 1
    if uneven:
        padded = torch.zeros((max(lengths), *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
        padded[: tensor.shape[0]] = tensor
        tensor = padded
    if sync_grads:
        gathered = list(_guarded("fabric.all_gather", lambda: _AllGatherWithGradients.apply(tensor, group)))  # type: ignore[no-untyped-call]
    else:
        gathered = [torch.empty_like(tensor) for _ in range(world_size)]
        _guarded("fabric.all_gather", lambda: dist.all_gather(gathered, tensor, group=group))
    if uneven:
        return [part[:length] for part, length in zip(gathered, lengths, strict=True)]
    return torch.stack(gathered)


class _AllGatherWithGradients(torch.autograd.Function):
    """All-gather whose backward sends each rank the summed gradient of its own slice."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor, group: Any) -> Tensor:  # type: ignore[override]
        ctx.group = group
        gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size(group))]
        dist.all_gather(gathered, tensor, group=group)
        return torch.stack(gathered)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad[dist.get_rank(ctx.group)], None
