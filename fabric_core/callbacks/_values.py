"""Turning the metrics a loop passes to a callback into numbers and short text."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch


def as_number(value: Any) -> float | int | None:
    """A Python number for an int, a float or a one-element tensor; ``None`` for anything else.

    Reading a tensor waits for the device, so callbacks call this only when they use the value.
    """
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return None
        return value.detach().item()  # type: ignore[no-any-return]
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    return None


def format_value(value: Any) -> str:
    """Short text for a metric: 4 significant digits for floats, ints as they are."""
    number = as_number(value)
    if number is None:
        return str(value)
    if isinstance(number, int):
        return str(number)
    if not math.isfinite(number):
        return str(number)
    return f"{number:.4g}"


def format_metrics(metrics: Mapping[str, Any] | None) -> dict[str, str]:
    """Each metric as short text, in the order given."""
    return {name: format_value(value) for name, value in (metrics or {}).items()}
