"""The Apple MPS accelerator."""

from __future__ import annotations

import platform
from typing import Any

import torch

from fabric_core.accelerators._devices import parse_device_indices
from fabric_core.accelerators.accelerator import Accelerator


class MPSAccelerator(Accelerator):
    """Apple silicon GPUs through Metal (one device)."""

    name = "mps"

    @staticmethod
    def is_available() -> bool:
        return platform.system() == "Darwin" and torch.backends.mps.is_available()

    @staticmethod
    def auto_device_count() -> int:
        return 1 if MPSAccelerator.is_available() else 0

    def parse_devices(self, devices: Any) -> list[int]:
        if not self.is_available():
            raise RuntimeError(
                f"accelerator='mps' with devices={devices!r} was requested, but MPS is not available here "
                "(it needs Apple silicon and macOS). Use accelerator='cpu' or 'auto'."
            )
        return parse_device_indices(devices, "mps", 1)

    def get_parallel_devices(self, devices: list[int]) -> list[torch.device]:
        return [torch.device("mps", index) for index in devices]
