"""``precision=`` on XLA devices: ``"32-true"``, ``"16-true"`` and ``"bf16-true"``, as Lightning's ``XLAPrecision``.

XLA has no autocast-style mixed precision in Lightning's sense, so only the ``*-true``
precisions exist: the whole model, its inputs and new tensors in one dtype, outputs back in
the default dtype. The dtype is set on the tensors themselves (torch_xla's old
``XLA_USE_BF16`` switch, which Lightning set, is gone from torch_xla 2.6 on).

The optimizer step is ``xm.optimizer_step``: it all-reduces the gradients over the
replicas (a no-op on one device), steps, and ends the XLA graph of the training step
(``barrier=True``, that is ``torch_xla.sync()``), so each step compiles once and runs, whether
or not batches come through XLA's parallel loader.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from fabric_core.precision.precision import DtypeContext, Precision, convert_floating_tensors
from torch.nn import Module
from torch.optim import Optimizer

_DTYPES = {"32-true": torch.float32, "16-true": torch.float16, "bf16-true": torch.bfloat16}
#: Lightning's short spellings, accepted by ``XLAPrecision(...)`` as by ``Fabric(precision=...)``.
_ALIASES = {"32": "32-true", "16": "16-true", "bf16": "bf16-true"}


class XLAPrecision(Precision):
    """Full or half precision for XLA devices.

    :param precision: ``"32-true"``, ``"16-true"`` (float16) or ``"bf16-true"`` (bfloat16).
    """

    def __init__(self, precision: str = "32-true") -> None:
        precision = _ALIASES.get(str(precision), str(precision))
        if precision not in _DTYPES:
            raise ValueError(
                f"precision={precision!r} is not supported on XLA devices: XLAPrecision supports "
                f"{', '.join(map(repr, _DTYPES))} (as Lightning's). For lower precision on TPUs use 'bf16-true'."
            )
        self.precision = precision
        self.dtype = _DTYPES[precision]
        self.converts = precision != "32-true"

    def convert_module(self, module: Module) -> Module:
        return module.to(dtype=self.dtype) if self.converts else module

    def tensor_init_context(self) -> AbstractContextManager:
        return DtypeContext(self.dtype) if self.converts else nullcontext()

    def forward_context(self) -> AbstractContextManager:
        return DtypeContext(self.dtype) if self.converts else nullcontext()

    def convert_input(self, data: Any) -> Any:
        return convert_floating_tensors(data, self.dtype) if self.converts else data

    def convert_output(self, data: Any) -> Any:
        return convert_floating_tensors(data, torch.get_default_dtype()) if self.converts else data

    def optimizer_step(self, optimizer: Optimizer, **kwargs: Any) -> Any:
        import torch_xla.core.xla_model as xm

        return xm.optimizer_step(optimizer, optimizer_args=kwargs, barrier=True)


def to_xla_precision(precision: Precision) -> XLAPrecision:
    """The XLA precision for the one the connector chose by name (``"bf16-true"`` -> ``XLAPrecision("bf16-true")``).

    :raises ValueError: for precisions XLA does not have (``"bf16-mixed"``, ``"64-true"``, a
        custom plugin), naming the ones it has.
    """
    if isinstance(precision, XLAPrecision):
        return precision
    name = getattr(precision, "precision", None)
    if name in _DTYPES and type(precision).__module__.startswith("fabric_core."):
        return XLAPrecision(name)
    raise ValueError(
        f"precision={name!r} ({type(precision).__name__}) is not supported on XLA devices: they run "
        f"{', '.join(map(repr, _DTYPES))} through XLAPrecision (as in Lightning). Use precision='bf16-true' "
        "instead of 'bf16-mixed' or '16-mixed', or pass plugins=[XLAPrecision(...)]."
    )
