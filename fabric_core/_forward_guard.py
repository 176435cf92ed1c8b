"""The guard that stops a model method called outside forward from bypassing the strategy.

:class:`~fabric_core.wrappers.FabricModule` runs any method of the user's model that is not
forward (nor marked with ``mark_forward_method``) under :class:`OutsideForwardGuard` when
the strategy needs its forward path (DDP, FSDP, DeepSpeed, model parallel): the method may
read the model, but calling a submodule or computing with a parameter raises, instead of
training silently wrong.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.module import register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves


def class_name(module: nn.Module) -> str:
    """The user's class name, not the one a strategy made for it (FSDP2's ``FSDPMyModel``)."""
    user_class = next((cls for cls in type(module).__mro__ if not cls.__module__.startswith("torch.")), None)
    return (user_class or type(module)).__name__


class OutsideForwardGuard(TorchFunctionMode):
    """Raises when a method called outside the strategy's forward path uses the model's weights.

    "Uses" means: one of the model's modules runs its forward, or a computation with grad
    enabled takes a parameter and produces a tensor that requires grad. Reading metadata
    (shapes, ``numel()``) and ``torch.no_grad()`` work on parameters pass.
    """

    def __init__(self, module: nn.Module, method: str, strategy: str) -> None:
        super().__init__()
        self._module = module
        self._method = method
        self._strategy = strategy
        self._modules = {id(m) for m in module.modules()}
        self._parameters = {id(p) for p in module.parameters()}
        self._handle: Any = None

    def __enter__(self) -> OutsideForwardGuard:
        self._handle = register_module_forward_pre_hook(self._check_module)
        super().__enter__()  # type: ignore[no-untyped-call]
        return self

    def __exit__(self, *exc_info: Any) -> None:
        super().__exit__(*exc_info)  # type: ignore[no-untyped-call]
        self._handle.remove()

    def _check_module(self, module: nn.Module, args: Any) -> None:
        if id(module) in self._modules:
            self._refuse(f"it calls {class_name(module)}.forward")

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        if isinstance(result, Tensor) and result.requires_grad and torch.is_grad_enabled():
            leaves = tree_leaves((args, kwargs))
            if any(isinstance(leaf, Tensor) and id(leaf) in self._parameters for leaf in leaves):
                self._refuse("it computes with the model's parameters")
        return result

    def _refuse(self, what: str) -> None:
        name = class_name(self._module)
        raise RuntimeError(
            f"{name}.{self._method}() was called on the model returned by fabric.setup(), outside its forward: "
            f"{what}, so {self._strategy} would not see it (no gradient sync, no parameter gathering) and training "
            f"would be silently wrong. Mark the method once after setup: "
            f"model.mark_forward_method({self._method!r}); it then runs through the strategy like forward."
        )
