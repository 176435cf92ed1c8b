"""Precision plugins: dtypes, autocast and loss scaling.

The names are imported lazily, on first use. Lightning's import path for them is
``fabric_core.plugins.precision``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabric_core._lazy import lazy_attributes

if TYPE_CHECKING:
    from fabric_core.precision.amp import MixedPrecision
    from fabric_core.precision.dtype import DoublePrecision, HalfPrecision
    from fabric_core.precision.fsdp import FSDPPrecision
    from fabric_core.precision.precision import Precision

__all__ = ["DoublePrecision", "FSDPPrecision", "HalfPrecision", "MixedPrecision", "Precision"]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "Precision": "fabric_core.precision.precision:Precision",
        "MixedPrecision": "fabric_core.precision.amp:MixedPrecision",
        "DoublePrecision": "fabric_core.precision.dtype:DoublePrecision",
        "HalfPrecision": "fabric_core.precision.dtype:HalfPrecision",
        "FSDPPrecision": "fabric_core.precision.fsdp:FSDPPrecision",
    },
)
