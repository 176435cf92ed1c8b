"""The CUDA accelerator."""

from __future__ import annotations

from typing import Any

import torch

from fabric_core.accelerators._devices import parse_device_indices
from fabric_core.accelerators.accelerator import Accelerator


class CUDAAccelerator(Accelerator):
    """NVIDIA GPUs through CUDA. ``devices`` is a count, ``-1``, ``"0,1"`` or a list of indices."""

    name = "cuda"

    @staticmethod
    def is_available() -> bool:
        return torch.cuda.is_available()

    @staticmethod
    def auto_device_count() -> int:
        return torch.cuda.device_count()

    def parse_devices(self, devices: Any) -> list[int]:
        available = self.auto_device_count()
        if available == 0:
            raise RuntimeError(
                f"accelerator='cuda' with devices={devices!r} was requested, but no CUDA GPU is visible to "
                "this process. Use accelerator='cpu' (or 'auto'), or check CUDA_VISIBLE_DEVICES and the driver."
            )
        return parse_device_indices(devices, "cuda", available)

    def get_parallel_devices(self, devices: list[int]) -> list[torch.device]:
        return [torch.device("cuda", index) for index in devices]

    def setup_device(self, device: torch.device) -> None:
        if device.type != "cuda":
            raise ValueError(f"CUDAAccelerator was given device {device}, which is not a CUDA device.")
        torch.cuda.set_device(device)

    def teardown(self) -> None:
        torch.cuda.empty_cache()
