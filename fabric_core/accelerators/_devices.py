"""Parsing the ``devices`` argument, shared by the accelerators."""

from __future__ import annotations

from typing import Any


def _bad(devices: Any, accelerator: str, why: str, fix: str) -> ValueError:
    return ValueError(f"devices={devices!r} is not valid for accelerator={accelerator!r}: {why}. {fix}")


def parse_device_count(devices: Any, accelerator: str, available: int) -> int:
    """A device count from ``devices`` as int, ``-1``, ``"auto"`` or a numeric string."""
    if isinstance(devices, bool):
        raise _bad(devices, accelerator, "a bool is not a device count", "Pass an int such as devices=2.")
    if isinstance(devices, str):
        text = devices.strip()
        if text == "auto":
            return available
        try:
            devices_int = int(text)
        except ValueError:
            raise _bad(
                devices,
                accelerator,
                "expected a number, -1 or 'auto'",
                "Pass for example devices=2 or devices='auto'.",
            ) from None
        devices = devices_int
    if not isinstance(devices, int):
        raise _bad(
            devices,
            accelerator,
            f"got a {type(devices).__name__}",
            "Pass an int, -1, 'auto' or a numeric string.",
        )
    if devices == -1:
        return available
    if devices < 1:
        raise _bad(devices, accelerator, "at least one device is needed", "Pass devices=1 or more, or -1 for all.")
    return devices


def parse_device_indices(devices: Any, accelerator: str, available: int) -> list[int]:
    """Device indices from an int count, ``-1``, ``"auto"``, ``"0,1"`` or a list of ints."""
    if isinstance(devices, str) and "," in devices:
        parts = [part.strip() for part in devices.split(",") if part.strip()]
        try:
            devices = [int(part) for part in parts]
        except ValueError:
            raise _bad(devices, accelerator, "expected comma-separated indices", "Pass for example '0,1'.") from None
    if isinstance(devices, (list, tuple)):
        indices = list(devices)
        if not indices or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
            raise _bad(devices, accelerator, "expected a non-empty list of int indices", "Pass for example [0, 1].")
        if len(set(indices)) != len(indices):
            raise _bad(devices, accelerator, "an index appears twice", "List each device once.")
        missing = [i for i in indices if i < 0 or i >= available]
        if missing:
            raise _bad(
                devices,
                accelerator,
                f"device {missing[0]} does not exist ({available} available)",
                f"Use indices from 0 to {available - 1}." if available else "No such device is visible here.",
            )
        return indices
    count = parse_device_count(devices, accelerator, available)
    if count > available:
        raise _bad(
            devices,
            accelerator,
            f"{count} requested but only {available} visible",
            "Request fewer devices, or devices=-1 for all of them.",
        )
    return list(range(count))
