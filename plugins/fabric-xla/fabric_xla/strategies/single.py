"""``strategy="single_xla"``: one XLA device in this process (Lightning's ``SingleDeviceXLAStrategy``)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

import torch
from fabric_core.strategies.single_device import SingleDeviceStrategy
from torch.nn import Module

from fabric_xla.strategies._common import (
    adopt_xla_components,
    check_accelerator,
    check_available,
    host_module_init_context,
    move_module,
    parallel_loader,
)


class SingleDeviceXLAStrategy(SingleDeviceStrategy):
    """Train on one XLA device: no launcher, collectives are identities, steps through ``xm.optimizer_step``.

    :param device: the XLA device (``"xla:0"``); the connector sets it from ``devices`` when not given.
    """

    def __init__(self, device: torch.device | str | int | None = None, **kwargs: Any) -> None:
        check_available("single_xla")
        if isinstance(device, int):
            device = torch.device("xla", device)
        super().__init__(device=device, **kwargs)

    def connect(self, **kwargs: Any) -> None:
        super().connect(**kwargs)
        adopt_xla_components(self)

    def module_init_context(self, empty_init: bool | None = None) -> AbstractContextManager:
        return host_module_init_context(self, empty_init)

    def module_to_device(self, module: Module) -> None:
        move_module(module, self.root_device)

    def batches_to_device(self, batches: Iterable[Any], device: torch.device) -> Iterable[Any]:
        return parallel_loader(batches, device)

    def validate(self) -> None:
        check_accelerator(self, "single_xla")
        if len(self.parallel_devices) > 1 or self.num_nodes > 1:
            raise ValueError(
                f"strategy='single_xla' runs one process on one XLA device, but {len(self.parallel_devices)} "
                f"device(s) on {self.num_nodes} node(s) were requested. Use devices=1, or strategy='xla' for one "
                "process per device."
            )
