"""The accelerator interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch


class Accelerator(ABC):
    """A kind of device (CPU, CUDA, MPS, ...).

    Subclasses say whether the device exists, how many there are, and how to turn the
    user's ``devices`` argument into the list of ``torch.device`` a run uses.
    """

    #: the name users pass, for messages
    name: str = ""
    #: what ``strategy="auto"`` picks on this device: the strategy for one process, and for more
    auto_strategies: tuple[str, str] = ("single_device", "ddp")
    #: why ``fabric run`` (which starts processes with torchrun) cannot run this device; ``None`` when it can
    fabric_run_refusal: str | None = None

    @staticmethod
    @abstractmethod
    def is_available() -> bool:
        """Whether this device kind can be used in this process."""

    @staticmethod
    @abstractmethod
    def auto_device_count() -> int:
        """How many devices ``devices="auto"`` and ``devices=-1`` mean."""

    @abstractmethod
    def parse_devices(self, devices: Any) -> list[int]:
        """Turn the ``devices`` argument into device indices (``[0, 1]``)."""

    @abstractmethod
    def get_parallel_devices(self, devices: list[int]) -> list[torch.device]:
        """The ``torch.device`` of each local process."""

    def setup_device(self, device: torch.device) -> None:
        """Prepare ``device`` for this process (for example ``torch.cuda.set_device``)."""

    def teardown(self) -> None:
        """Release what :meth:`setup_device` took."""

    @classmethod
    def register_accelerators(cls, accelerator_registry: Any) -> None:
        """Lightning's registration classmethod, kept so subclasses written for Lightning can call it.

        fabric-core never calls it: accelerators are registered through the
        ``fabric_register_accelerators`` hook of a plugin.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
