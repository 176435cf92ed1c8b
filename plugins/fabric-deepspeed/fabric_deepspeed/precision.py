"""Precision under DeepSpeed: its own fp16/bf16 modes, chosen by Fabric's ``precision=``.

DeepSpeed owns the low-precision machinery (its engine casts the model, keeps fp32 master
weights in the ZeRO optimizer and scales fp16 losses), so this plugin does what is left:
it casts inputs to the engine's dtype and outputs back to the default dtype, and for the
``*-true`` precisions creates and converts modules in that dtype, as Lightning's
``DeepSpeedPrecision`` does. :class:`~fabric_deepspeed.strategy.DeepSpeedStrategy`
replaces the precision the connector chose by name with this one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from fabric_core.precision.precision import DtypeContext, Precision, convert_floating_tensors
from torch import Tensor
from torch.nn import Module
from torch.optim import Optimizer

from fabric_deepspeed.config import PRECISION_SECTIONS

_DTYPES = {
    "32-true": torch.float32,
    "16-mixed": torch.float16,
    "16-true": torch.float16,
    "bf16-mixed": torch.bfloat16,
    "bf16-true": torch.bfloat16,
}


class DeepSpeedPrecision(Precision):
    """``precision=`` for DeepSpeed: ``"32-true"``, ``"bf16-mixed"``, ``"bf16-true"``, ``"16-mixed"``, ``"16-true"``.

    ``*-mixed`` and ``*-true`` both run the engine in DeepSpeed's fp16/bf16 mode (float16 or
    bfloat16 weights and activations, float32 master weights in the optimizer); ``*-true``
    also creates modules in that dtype inside ``fabric.init_module()``.
    """

    def __init__(self, precision: str = "32-true") -> None:
        if precision not in _DTYPES:
            raise ValueError(
                f"DeepSpeedPrecision(precision={precision!r}): DeepSpeed supports {', '.join(map(repr, _DTYPES))}."
            )
        self.precision = precision
        self.dtype = _DTYPES[precision]
        self.converts = precision != "32-true"

    @property
    def deepspeed_section(self) -> str | None:
        """``"fp16"``, ``"bf16"`` or ``None``: the DeepSpeed config section this precision enables."""
        return PRECISION_SECTIONS[self.precision]

    def convert_module(self, module: Module) -> Module:
        if self.precision.endswith("-true"):
            return module.to(dtype=self.dtype)
        return module

    def tensor_init_context(self) -> AbstractContextManager:
        if self.precision.endswith("-true") and self.dtype is not torch.float32:
            return DtypeContext(self.dtype)
        return nullcontext()

    def convert_input(self, data: Any) -> Any:
        return convert_floating_tensors(data, self.dtype)

    def convert_output(self, data: Any) -> Any:
        return convert_floating_tensors(data, torch.get_default_dtype())

    def backward(self, tensor: Tensor, module: Module | None, *args: Any, **kwargs: Any) -> None:
        # ``module`` is the DeepSpeed engine: it scales the loss (fp16) and reduces gradients.
        engine: Any = module
        if engine is None or not callable(getattr(engine, "backward", None)):
            raise TypeError("DeepSpeedPrecision.backward needs the DeepSpeed engine the loss came from.")
        engine.backward(tensor, *args, **kwargs)

    def optimizer_step(self, optimizer: Optimizer, **kwargs: Any) -> Any:
        # ``optimizer`` is the DeepSpeed engine here: its step unscales, clips and steps.
        return optimizer.step(**kwargs)
