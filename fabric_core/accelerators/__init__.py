"""Accelerators: which device kind a run uses and how devices are counted."""

from fabric_core.accelerators.accelerator import Accelerator
from fabric_core.accelerators.cpu import CPUAccelerator
from fabric_core.accelerators.cuda import CUDAAccelerator
from fabric_core.accelerators.mps import MPSAccelerator

__all__ = ["Accelerator", "CPUAccelerator", "CUDAAccelerator", "MPSAccelerator"]
