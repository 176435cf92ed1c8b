"""``accelerator="tpu"`` (or ``"xla"``): XLA devices through torch_xla's PJRT runtime.

Which XLA device a process uses is PJRT's choice, made from ``PJRT_DEVICE`` (``TPU``,
``CPU``, ...). This accelerator reads the same setting through ``torch_xla.runtime`` and
counts devices the ways that do not start the runtime (a started runtime cannot launch
processes any more): TPU chips on the PCI bus, ``CPU_NUM_DEVICES`` for the CPU.

It is *available* when torch_xla is installed and an XLA device is configured or present:
``PJRT_DEVICE`` is set, or libtpu is installed and TPU chips are attached. So on a machine
without TPUs, ``accelerator="auto"`` keeps choosing the CPU or GPU, and ``PJRT_DEVICE=CPU``
opts into XLA on the CPU (the way this add-on is tested).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import torch
from fabric_core.accelerators.accelerator import Accelerator

from fabric_xla._imports import check_torch_xla

_WHAT = "accelerator='tpu' (XLA)"


def configured_device_type() -> str | None:
    """The PJRT device type this process will use (``"TPU"``, ``"CPU"``, ...), or ``None`` when there is none.

    ``PJRT_DEVICE`` when set (read through ``torch_xla.runtime``); otherwise ``"TPU"`` when
    libtpu is installed and TPU chips are attached, as torch_xla itself decides. torch_xla
    is imported only in those two cases.
    """
    if os.environ.get("PJRT_DEVICE", "").strip():
        import torch_xla.runtime as xr

        device_type = xr.device_type()
        return device_type.upper() if device_type else None
    if importlib.util.find_spec("libtpu") is not None:
        from torch_xla._internal import tpu

        if tpu.num_available_chips() > 0:
            return "TPU"
    return None


class XLAAccelerator(Accelerator):
    """XLA devices (TPU cores, or CPU devices with ``PJRT_DEVICE=CPU``), as Lightning's ``XLAAccelerator``.

    :raises XLANotAvailableError: torch_xla is missing, or built for another torch (both versions named).
    :raises RuntimeError: no XLA device is configured or attached (what to set is named).
    """

    name = "tpu"
    #: ``strategy="auto"``: one device in this process, or one process per device through XLA's launcher
    auto_strategies = ("single_xla", "xla")
    fabric_run_refusal = (
        "fabric run starts every process with torchrun, but XLA devices are started by XLA's own launcher "
        "(torch_xla.launch) from inside the script: run the script directly, with Fabric(accelerator='tpu', "
        "devices=N) and fabric.launch(train), for example PJRT_DEVICE=TPU python train.py"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_torch_xla(_WHAT)
        if not self.is_available():
            raise RuntimeError(
                f"{_WHAT} needs an XLA device, but none is configured here: PJRT_DEVICE is not set and no TPU "
                "was found (libtpu not installed, or no TPU chip attached). On a TPU machine: pip install "
                "'torch-xla[tpu]'. To run on the CPU through XLA: set PJRT_DEVICE=CPU."
            )

    @staticmethod
    def is_available() -> bool:
        if importlib.util.find_spec("torch_xla") is None:
            return False
        try:
            return configured_device_type() is not None
        except Exception:  # a torch_xla that cannot load: not available (creating it says why)
            return False

    @staticmethod
    def device_type() -> str:
        """The PJRT device type (``"TPU"``, ``"CPU"``, ...); ``"unknown"`` when none is configured."""
        return configured_device_type() or "unknown"

    @staticmethod
    def auto_device_count() -> int:
        """The XLA devices of this host, counted without starting the runtime.

        TPU: every core of every attached chip. CPU: ``CPU_NUM_DEVICES`` (default 1), as the
        PJRT CPU client creates them. Other device types: 1.
        """
        device_type = configured_device_type()
        if device_type == "TPU":
            from torch_xla._internal import tpu

            return int(tpu.num_available_devices())
        if device_type == "CPU":
            text = os.environ.get("CPU_NUM_DEVICES", "").strip()
            return int(text) if text.isdigit() and int(text) > 0 else 1
        return 1

    def parse_devices(self, devices: Any) -> list[int]:
        """``"auto"``/``-1``: every device; an int: that many; ``[i]``: device ``i`` alone (Lightning's rule)."""
        available = self.auto_device_count()
        if isinstance(devices, str) and "," in devices:
            devices = [part.strip() for part in devices.split(",") if part.strip()]
        if isinstance(devices, (list, tuple)):
            items = list(devices)
            if len(items) != 1 or not str(items[0]).isdigit():
                raise ValueError(
                    f"devices={devices!r} is not valid for {_WHAT}: a list names one device ([index]), as in "
                    "Lightning. For several devices pass their number, for example devices=8."
                )
            index = int(items[0])
            if index >= available:
                raise ValueError(
                    f"devices={devices!r} is not valid for {_WHAT}: this host has {available} XLA device(s) "
                    f"({self.device_type()}), indexed 0 to {available - 1}."
                )
            return [index]
        if devices in ("auto", -1, "-1", None):
            return list(range(available))
        if isinstance(devices, bool) or not (
            isinstance(devices, int) or (isinstance(devices, str) and devices.strip().isdigit())
        ):
            raise ValueError(
                f"devices={devices!r} is not valid for {_WHAT}: expected a number of devices, -1, 'auto' or [index]."
            )
        count = int(devices)
        if count < 1:
            raise ValueError(f"devices={devices!r} is not valid for {_WHAT}: at least one device is needed.")
        if count > available:
            hint = " (set CPU_NUM_DEVICES for more CPU devices)" if self.device_type() == "CPU" else ""
            raise ValueError(
                f"devices={devices!r} is not valid for {_WHAT}: this host has {available} XLA device(s) of type "
                f"{self.device_type()}{hint}."
            )
        return list(range(count))

    def get_parallel_devices(self, devices: list[int]) -> list[torch.device]:
        # Plain torch.device objects: making them does not start the XLA runtime.
        return [torch.device("xla", index) for index in devices]
