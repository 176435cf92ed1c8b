"""Whole-model low or high precision: ``"16-true"``, ``"bf16-true"``, ``"64-true"``."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch
from torch.nn import Module

from fabric_core.precision.precision import DtypeContext, Precision, convert_floating_tensors

_DTYPES = {"16-true": torch.float16, "bf16-true": torch.bfloat16, "64-true": torch.float64}


class _DtypePrecision(Precision):
    """Parameters, inputs and new tensors all in one dtype; outputs back in the default dtype."""

    converts = True

    def __init__(self, precision: str) -> None:
        if precision not in _DTYPES:
            raise ValueError(f"{type(self).__name__}(precision={precision!r}): expected one of {sorted(_DTYPES)}.")
        self.precision = precision
        self.dtype = _DTYPES[precision]

    def convert_module(self, module: Module) -> Module:
        return module.to(dtype=self.dtype)

    def tensor_init_context(self) -> AbstractContextManager:
        return DtypeContext(self.dtype)

    def forward_context(self) -> AbstractContextManager:
        return DtypeContext(self.dtype)

    def convert_input(self, data: Any) -> Any:
        return convert_floating_tensors(data, self.dtype)

    def convert_output(self, data: Any) -> Any:
        return convert_floating_tensors(data, torch.get_default_dtype())


class HalfPrecision(_DtypePrecision):
    """``"16-true"`` (float16) or ``"bf16-true"`` (bfloat16) for everything."""

    def __init__(self, precision: str = "bf16-true") -> None:
        if precision not in ("16-true", "bf16-true"):
            raise ValueError(f"HalfPrecision(precision={precision!r}): expected '16-true' or 'bf16-true'.")
        super().__init__(precision)


class DoublePrecision(_DtypePrecision):
    """``"64-true"``: float64 parameters, inputs and new tensors."""

    def __init__(self, precision: str = "64-true") -> None:
        super().__init__(precision)
