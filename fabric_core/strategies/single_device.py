"""Training on one device in one process."""

from __future__ import annotations

from typing import Any

import torch

from fabric_core.strategies.strategy import Strategy


class SingleDeviceStrategy(Strategy):
    """One process, one device: no wrapping, collectives are identities.

    :param device: the device to use; the connector sets it from ``accelerator``/``devices``
        when not given.
    """

    def __init__(self, device: torch.device | str | int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._device = torch.device(device) if device is not None else None

    @property
    def root_device(self) -> torch.device:
        if self._device is not None:
            return self._device
        if self.parallel_devices:
            return self.parallel_devices[0]
        return torch.device("cpu")

    def validate(self) -> None:
        if len(self.parallel_devices) > 1 or self.num_nodes > 1:
            raise ValueError(
                f"strategy='single_device' runs one process on one device, but {len(self.parallel_devices)} "
                f"device(s) on {self.num_nodes} node(s) were requested. Use devices=1 and num_nodes=1, or a "
                "multi-process strategy."
            )
