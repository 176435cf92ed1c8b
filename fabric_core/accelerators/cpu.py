"""The CPU accelerator."""

from __future__ import annotations

import os
from typing import Any

import torch

from fabric_core.accelerators._devices import parse_device_count
from fabric_core.accelerators.accelerator import Accelerator


class CPUAccelerator(Accelerator):
    """Runs on the CPU. ``devices=N`` means N processes (each a ``cpu`` device)."""

    name = "cpu"

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def auto_device_count() -> int:
        # Lightning's rule: "auto" is one process on CPU; -1 asks for one per core.
        return 1

    def parse_devices(self, devices: Any) -> list[int]:
        if isinstance(devices, (list, tuple)) or (isinstance(devices, str) and "," in devices):
            raise ValueError(
                f"devices={devices!r} is not valid for accelerator='cpu': CPU devices are counted, not "
                "indexed. Pass the number of processes, for example devices=2."
            )
        if devices == -1 or devices == "-1":
            return list(range(os.cpu_count() or 1))
        return list(range(parse_device_count(devices, "cpu", 1)))

    def get_parallel_devices(self, devices: list[int]) -> list[torch.device]:
        return [torch.device("cpu")] * len(devices)
