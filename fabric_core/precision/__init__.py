"""Precision plugins: dtypes, autocast and loss scaling."""

from fabric_core.precision.amp import MixedPrecision
from fabric_core.precision.dtype import DoublePrecision, HalfPrecision
from fabric_core.precision.precision import Precision

__all__ = ["DoublePrecision", "HalfPrecision", "MixedPrecision", "Precision"]
