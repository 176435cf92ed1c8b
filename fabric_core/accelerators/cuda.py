"""The CUDA accelerator."""

from __future__ import annotations

from typing import Any

import torch

from fabric_core.accelerators._devices import parse_device_indices
from fabric_core.accelerators.accelerator import Accelerator


def find_usable_cuda_devices(num_devices: int = -1) -> list[int]:
    """The indices of ``num_devices`` CUDA devices that accept work (all of them for ``-1``).

    A device counts as usable when a tensor can be created on it; a GPU held exclusively by
    another process, or broken, is skipped. Pass the result as ``Fabric(devices=...)``.

    :raises ValueError: when no CUDA device is visible, or fewer than ``num_devices`` exist.
    :raises RuntimeError: when fewer than ``num_devices`` of them are usable.
    """
    if num_devices == 0:
        return []
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if visible == 0:
        raise ValueError(
            f"find_usable_cuda_devices({num_devices}): no CUDA device is visible to this process. Check the driver "
            "and CUDA_VISIBLE_DEVICES, or use accelerator='cpu'."
        )
    if num_devices > visible:
        raise ValueError(
            f"find_usable_cuda_devices({num_devices}): this machine has only {visible} visible CUDA device(s). "
            f"Ask for {visible} or fewer, or -1 for every usable one."
        )
    usable: list[int] = []
    unusable: list[int] = []
    for index in range(visible):
        try:
            torch.tensor(0, device=torch.device("cuda", index))
        except RuntimeError:
            unusable.append(index)
            continue
        usable.append(index)
        if len(usable) == num_devices:
            break
    if num_devices != -1 and len(usable) < num_devices:
        raise RuntimeError(
            f"find_usable_cuda_devices({num_devices}): only {len(usable)} CUDA device(s) accept work ({usable}); "
            f"devices {unusable} are busy or unavailable (another process may hold them in exclusive mode). "
            "Free them, or ask for fewer devices."
        )
    return usable


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
