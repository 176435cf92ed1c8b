"""Lightning's ``lightning.fabric.plugins.precision``: the precision classes, lazily.

``DeepSpeedPrecision`` comes from fabric-deepspeed and ``XLAPrecision`` from fabric-xla;
``BitsandbytesPrecision`` and ``TransformerEnginePrecision`` have no add-on yet. Without
the add-on, importing one of them raises an ``ImportError`` that says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabric_core._addon_names import addons
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
        "DoublePrecision": "fabric_core.precision.dtype:DoublePrecision",
        "HalfPrecision": "fabric_core.precision.dtype:HalfPrecision",
        "MixedPrecision": "fabric_core.precision.amp:MixedPrecision",
        "FSDPPrecision": "fabric_core.precision.fsdp:FSDPPrecision",
    },
    addons("DeepSpeedPrecision", "XLAPrecision", "BitsandbytesPrecision", "TransformerEnginePrecision"),
)
