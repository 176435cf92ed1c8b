"""``strategy="dp"``: ``torch.nn.DataParallel`` over several GPUs in one process."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import DataParallel, Module

from fabric_core.strategies.parallel import ParallelStrategy
from fabric_core.strategies.strategy import Strategy


class DataParallelStrategy(Strategy):
    """Splits each batch over the process's GPUs and gathers outputs on the first.

    Kept for Lightning compatibility; DDP is faster. On CPU the connector replaces it by
    ``"ddp"`` with a warning, as Lightning does.
    """

    @property
    def root_device(self) -> torch.device:
        return self.parallel_devices[0] if self.parallel_devices else torch.device("cpu")

    def validate(self) -> None:
        if self.root_device.type != "cuda":
            raise ValueError(
                f"strategy='dp' needs CUDA devices, but the devices are {self.root_device.type}. Use strategy='ddp'."
            )

    def setup_module(self, module: Module) -> Module:
        return DataParallel(module, device_ids=[device.index for device in self.parallel_devices])

    def batch_to_device(self, batch: Any, device: torch.device | None = None) -> Any:
        return super().batch_to_device(batch, device or self.root_device)


# One process driving several GPUs: not a ParallelStrategy by its base, but one for isinstance, as in Lightning.
ParallelStrategy.register(DataParallelStrategy)
