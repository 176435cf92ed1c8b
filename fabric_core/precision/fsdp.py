"""``FSDPPrecision``: Lightning's precision class for FSDP, by name.

fabric-core's ``FSDPStrategy`` derives its FSDP2 ``MixedPrecisionPolicy`` from the name of
whatever precision it is given, so this class only has to carry the name and behave as
the matching precision (full, true half, or mixed) does; :attr:`mixed_precision_config`
shows the policy FSDP will use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor
from torch.nn import Module
from torch.optim import Optimizer

from fabric_core.precision.amp import MixedPrecision
from fabric_core.precision.dtype import HalfPrecision
from fabric_core.precision.precision import Precision

__all__ = ["FSDPPrecision"]

_SUPPORTED = ("32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed")
_HALF = {"16": torch.float16, "bf16": torch.bfloat16}


class FSDPPrecision(Precision):
    """The precision of an FSDP run: ``"32-true"``, ``"16-true"``, ``"bf16-true"``,
    ``"16-mixed"`` or ``"bf16-mixed"``.

    :param precision: one of the names above.
    :param scaler: a ``torch.amp.GradScaler`` for ``"16-mixed"`` (one is made when omitted).
    """

    def __init__(self, precision: str, scaler: Any = None) -> None:
        if precision not in _SUPPORTED:
            raise ValueError(
                f"FSDPPrecision(precision={precision!r}) is not supported with FSDP. Use one of {list(_SUPPORTED)}."
            )
        if scaler is not None and precision != "16-mixed":
            raise ValueError(
                f"FSDPPrecision(precision={precision!r}, scaler=...): only '16-mixed' scales the loss. Drop the "
                "scaler, or use precision='16-mixed'."
            )
        self.precision = precision
        self._inner: Precision
        if precision.endswith("-mixed"):
            self._inner = MixedPrecision(precision, scaler=scaler)
        elif precision == "32-true":
            self._inner = Precision()
        else:
            self._inner = HalfPrecision(precision)
        self.converts = self._inner.converts

    @property
    def scaler(self) -> Any:
        """The grad scaler of ``"16-mixed"`` (``None`` otherwise, and before :meth:`setup`)."""
        return getattr(self._inner, "scaler", None)

    @property
    def mixed_precision_config(self) -> Any:
        """The ``torch.distributed.fsdp.MixedPrecisionPolicy`` FSDPStrategy uses for this precision."""
        from torch.distributed.fsdp import MixedPrecisionPolicy

        half = _HALF.get(self.precision.split("-")[0])
        if half is None:
            return MixedPrecisionPolicy()
        param_dtype = half if self.precision.endswith("-true") else None
        return MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=half)

    def setup(self, device_type: str) -> None:
        self._inner.setup(device_type)

    def convert_module(self, module: Module) -> Module:
        return self._inner.convert_module(module)

    def tensor_init_context(self) -> AbstractContextManager:
        return self._inner.tensor_init_context()

    def module_init_context(self) -> AbstractContextManager:
        return self._inner.module_init_context()

    def forward_context(self) -> AbstractContextManager:
        return self._inner.forward_context()

    def convert_input(self, data: Any) -> Any:
        return self._inner.convert_input(data)

    def convert_output(self, data: Any) -> Any:
        return self._inner.convert_output(data)

    def backward(self, tensor: Tensor, module: Module | None, *args: Any, **kwargs: Any) -> None:
        self._inner.backward(tensor, module, *args, **kwargs)

    def optimizer_step(self, optimizer: Optimizer, **kwargs: Any) -> Any:
        return self._inner.optimizer_step(optimizer, **kwargs)

    def main_params(self, optimizer: Optimizer) -> Iterator[Tensor]:
        return self._inner.main_params(optimizer)

    def unscale_gradients(self, optimizer: Optimizer) -> None:
        self._inner.unscale_gradients(optimizer)

    def state_dict(self) -> dict[str, Any]:
        return self._inner.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._inner.load_state_dict(state_dict)
