"""Type aliases and protocols used across Lightning's API, under Lightning's names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeAlias, runtime_checkable

import torch
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

__all__ = [
    "LRScheduler",
    "Optimizable",
    "ReduceLROnPlateau",
    "ReduceOp",
    "Steppable",
]

_PATH: TypeAlias = str | Path
_DEVICE: TypeAlias = torch.device | str | int
_MAP_LOCATION_TYPE: TypeAlias = (
    _DEVICE | Callable[[torch.Tensor, str], torch.Tensor | None] | dict[_DEVICE, _DEVICE] | None
)
_PARAMETERS: TypeAlias = Any  # an iterable of tensors or of parameter-group dicts
_DictKey: TypeAlias = str | int

ReduceOp = torch.distributed.ReduceOp if torch.distributed.is_available() else None
RedOpType = ReduceOp.RedOpType if ReduceOp is not None else None


@runtime_checkable
class _Stateful(Protocol):
    """Anything with ``state_dict()`` and ``load_state_dict()``, which ``fabric.save`` converts."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


@runtime_checkable
class Steppable(Protocol):
    """Anything with a ``step(closure=None)`` method."""

    def step(self, closure: Any = ...) -> Any: ...


@runtime_checkable
class Optimizable(Steppable, Protocol):
    """An optimizer as Fabric sees it: steppable, with parameter groups and a state dict."""

    param_groups: list[dict[Any, Any]]
    defaults: dict[Any, Any]
    state: Any

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...
