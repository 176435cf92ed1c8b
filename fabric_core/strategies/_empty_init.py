"""Skipping weight initialisation while a model is built (``init_module(empty_init=True)``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.overrides import TorchFunctionMode


class EmptyInit(TorchFunctionMode):
    """Inside this mode, ``torch.nn.init`` functions return their tensor untouched.

    Useful when the weights are about to be overwritten by a checkpoint: building a large
    model skips the cost of initialising it first.
    """

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple = (),
        kwargs: dict | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init":
            if "tensor" in kwargs:
                return kwargs["tensor"]
            return args[0]
        return func(*args, **kwargs)
