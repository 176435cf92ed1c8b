"""Accelerators: which device kind a run uses and how devices are counted.

Every name of Lightning Fabric's ``lightning.fabric.accelerators`` is importable from here,
lazily. ``XLAAccelerator`` comes from the fabric-xla add-on; without it, importing it raises
an ``ImportError`` that says so. ``ACCELERATOR_REGISTRY`` is a read-only view of the
registered accelerator names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabric_core._addon_names import addons
from fabric_core._lazy import lazy_attributes

if TYPE_CHECKING:
    from fabric_core._registry_view import RegistryView
    from fabric_core.accelerators.accelerator import Accelerator
    from fabric_core.accelerators.cpu import CPUAccelerator
    from fabric_core.accelerators.cuda import CUDAAccelerator, find_usable_cuda_devices
    from fabric_core.accelerators.mps import MPSAccelerator

    ACCELERATOR_REGISTRY: RegistryView

__all__ = [
    "ACCELERATOR_REGISTRY",
    "Accelerator",
    "CPUAccelerator",
    "CUDAAccelerator",
    "MPSAccelerator",
    "find_usable_cuda_devices",
]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "Accelerator": "fabric_core.accelerators.accelerator:Accelerator",
        "CPUAccelerator": "fabric_core.accelerators.cpu:CPUAccelerator",
        "CUDAAccelerator": "fabric_core.accelerators.cuda:CUDAAccelerator",
        "MPSAccelerator": "fabric_core.accelerators.mps:MPSAccelerator",
        "find_usable_cuda_devices": "fabric_core.accelerators.cuda:find_usable_cuda_devices",
        "ACCELERATOR_REGISTRY": "fabric_core._registry_view:ACCELERATOR_REGISTRY",
    },
    addons("XLAAccelerator"),
)
