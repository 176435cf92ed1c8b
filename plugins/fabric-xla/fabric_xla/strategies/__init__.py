"""The XLA strategies: ``single_xla``, ``xla`` and ``xla_fsdp`` (Lightning's names for the classes)."""

from __future__ import annotations

from fabric_xla.strategies.fsdp import XLAFSDPStrategy
from fabric_xla.strategies.single import SingleDeviceXLAStrategy
from fabric_xla.strategies.xla import XLAStrategy

__all__ = ["SingleDeviceXLAStrategy", "XLAFSDPStrategy", "XLAStrategy"]
