"""Mixed precision with ``torch.autocast`` (``"16-mixed"``, ``"bf16-mixed"``)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor
from torch.nn import Module
from torch.optim import LBFGS, Optimizer

from fabric_core.precision.precision import Precision, convert_floating_tensors


class MixedPrecision(Precision):
    """Autocast the forward pass; keep parameters and optimizer state in float32.

    ``"16-mixed"`` scales the loss with a :class:`torch.amp.GradScaler` (on CUDA, and on
    CPU too: torch supports float16 autocast and a CPU grad scaler, so unlike Lightning we
    do not silently switch CPU runs to bfloat16). ``"bf16-mixed"`` needs no scaler.
    Model outputs come back in the default dtype (float32), as in Lightning.

    :param precision: ``"16-mixed"`` or ``"bf16-mixed"``.
    :param device: the device type for autocast; set from the accelerator when omitted.
    :param scaler: a grad scaler to use for ``"16-mixed"`` (one is made when omitted).
    """

    converts = True

    def __init__(self, precision: str, device: str | None = None, scaler: Any = None) -> None:
        if precision not in ("16-mixed", "bf16-mixed"):
            raise ValueError(f"MixedPrecision(precision={precision!r}): expected '16-mixed' or 'bf16-mixed'.")
        if scaler is not None and precision == "bf16-mixed":
            raise ValueError(
                "MixedPrecision(precision='bf16-mixed', scaler=...): bfloat16 needs no loss scaling. "
                "Drop the scaler, or use precision='16-mixed'."
            )
        self.precision = precision
        self.device = device or "cpu"
        self._device_given = device is not None
        self.scaler = scaler
        self._dtype = torch.float16 if precision == "16-mixed" else torch.bfloat16

    def setup(self, device_type: str) -> None:
        if not self._device_given:
            self.device = device_type
        if self.precision == "16-mixed" and self.scaler is None:
            self.scaler = torch.amp.GradScaler(self.device)

    def forward_context(self) -> AbstractContextManager:
        return torch.autocast(self.device, dtype=self._dtype)

    def convert_input(self, data: Any) -> Any:
        return convert_floating_tensors(data, torch.get_default_dtype())

    def convert_output(self, data: Any) -> Any:
        return convert_floating_tensors(data, torch.get_default_dtype())

    def backward(self, tensor: Tensor, module: Module | None, *args: Any, **kwargs: Any) -> None:
        if self.scaler is not None:
            tensor = self.scaler.scale(tensor)
        tensor.backward(*args, **kwargs)  # type: ignore[no-untyped-call]

    def optimizer_step(self, optimizer: Optimizer, **kwargs: Any) -> Any:
        if self.scaler is None:
            return optimizer.step(**kwargs)
        if isinstance(optimizer, LBFGS):
            raise TypeError(
                "precision='16-mixed' cannot step an LBFGS optimizer: its closure re-evaluates the loss, "
                "which loss scaling does not support. Use precision='bf16-mixed' or '32-true'."
            )
        result = self.scaler.step(optimizer, **kwargs)
        self.scaler.update()
        return result

    def unscale_gradients(self, optimizer: Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.scaler is not None and state_dict:
            self.scaler.load_state_dict(state_dict)
