"""The precision interface, which is also full 32-bit precision (``"32-true"``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor
from torch.nn import Module
from torch.optim import Optimizer

from fabric_core.utilities.apply_func import apply_to_collection


class Precision:
    """Full precision (``"32-true"``), and the interface every precision plugin implements.

    A strategy owns one precision object and asks it to convert modules, wrap forward
    passes, scale the loss on backward and step optimizers.
    """

    #: the canonical name (``"32-true"``, ``"bf16-mixed"``, ...)
    precision: str = "32-true"
    #: ``False`` when forward needs no context and no input/output conversion, so the
    #: module wrapper can call the model directly (the 32-true fast path)
    converts: bool = False
    #: ``True`` when the class overrides Lightning's ``pre_backward``/``post_backward``, which
    #: the strategy then calls around :meth:`backward` (set for each subclass, not by hand)
    has_backward_hooks: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A subclass written for Lightning overrides these without knowing about ``converts``:
        # it must still get them called.
        super().__init_subclass__(**kwargs)
        hooks = ("forward_context", "convert_input", "convert_output")
        if "converts" not in cls.__dict__ and any(name in cls.__dict__ for name in hooks):
            cls.converts = True
        cls.has_backward_hooks = (
            cls.pre_backward is not Precision.pre_backward or cls.post_backward is not Precision.post_backward
        )

    def setup(self, device_type: str) -> None:
        """Learn the device type (``"cpu"``, ``"cuda"``) once the accelerator is chosen."""

    def convert_module(self, module: Module) -> Module:
        """Change the module's parameters to this precision (in place) and return it."""
        return module

    def tensor_init_context(self) -> AbstractContextManager:
        """A context in which new tensors get this precision's dtype."""
        return nullcontext()

    def module_init_context(self) -> AbstractContextManager:
        """A context in which new modules get this precision's dtype."""
        return self.tensor_init_context()

    def forward_context(self) -> AbstractContextManager:
        """A context for the forward pass (autocast for mixed precision)."""
        return nullcontext()

    def convert_input(self, data: Any) -> Any:
        """Cast floating-point tensors going into the model."""
        return data

    def convert_output(self, data: Any) -> Any:
        """Cast floating-point tensors coming out of the model."""
        return data

    def pre_backward(self, tensor: Tensor, module: Module | None) -> Any:
        """Lightning's hook before :meth:`backward`; returns ``tensor`` unchanged here."""
        return tensor

    def backward(self, tensor: Tensor, module: Module | None, *args: Any, **kwargs: Any) -> None:
        tensor.backward(*args, **kwargs)  # type: ignore[no-untyped-call]

    def post_backward(self, tensor: Tensor, module: Module | None) -> Any:
        """Lightning's hook after :meth:`backward`; returns ``tensor`` unchanged here."""
        return tensor

    def optimizer_step(self, optimizer: Optimizer, **kwargs: Any) -> Any:
        return optimizer.step(**kwargs)

    def main_params(self, optimizer: Optimizer) -> Iterator[Tensor]:
        """The parameters the optimizer updates (the ones to clip), group by group."""
        for group in optimizer.param_groups:
            yield from group["params"]

    def unscale_gradients(self, optimizer: Optimizer) -> None:
        """Undo loss scaling on the gradients (before clipping); nothing to do here."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass

    def teardown(self) -> None:
        """Release what this precision holds at the end of a run (nothing here)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(precision={self.precision!r})"


def convert_floating_tensors(data: Any, dtype: torch.dtype) -> Any:
    """Cast every floating-point tensor in ``data`` to ``dtype``; others stay as they are."""

    def cast(tensor: Tensor) -> Tensor:
        return tensor.to(dtype) if tensor.dtype is not dtype and tensor.is_floating_point() else tensor

    # Fast paths for what a forward pass usually takes and returns: one tensor, or
    # positional tensors and no keyword arguments.
    if isinstance(data, Tensor):
        return cast(data)
    positional_only = type(data) is tuple and len(data) == 2 and type(data[0]) is tuple
    positional_only = positional_only and type(data[1]) is dict and not data[1]
    if positional_only and all(type(item) is Tensor for item in data[0]):
        return tuple(cast(item) for item in data[0]), data[1]
    return apply_to_collection(data, Tensor, cast)


class DtypeContext:
    """Sets ``torch``'s default dtype inside the block, and restores it after."""

    def __init__(self, dtype: torch.dtype) -> None:
        self._dtype = dtype
        self._previous: list[torch.dtype] = []

    def __enter__(self) -> None:
        self._previous.append(torch.get_default_dtype())
        torch.set_default_dtype(self._dtype)

    def __exit__(self, *exc: object) -> None:
        torch.set_default_dtype(self._previous.pop())
