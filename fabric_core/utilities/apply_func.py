"""Applying a function to every tensor in a nested collection."""

from __future__ import annotations

import dataclasses
import sys
from abc import ABC
from collections.abc import Callable, Mapping
from typing import Any

import torch


def apply_to_collection(data: Any, dtype: type | tuple[type, ...], function: Callable[..., Any]) -> Any:
    """Return ``data`` with ``function`` applied to every element of type ``dtype``.

    Walks mappings, lists, tuples (named tuples keep their type) and dataclass instances;
    anything else is returned as it is.
    """
    if isinstance(data, dtype):
        return function(data)
    if isinstance(data, Mapping):
        items = [(key, apply_to_collection(value, dtype, function)) for key, value in data.items()]
        try:
            return type(data)(items)  # type: ignore[call-arg]
        except TypeError:  # a mapping type whose constructor takes other arguments
            return dict(items)
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # namedtuple
        return type(data)(*(apply_to_collection(value, dtype, function) for value in data))
    if isinstance(data, (list, tuple)):
        return type(data)(apply_to_collection(value, dtype, function) for value in data)
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        changes = {
            f.name: apply_to_collection(getattr(data, f.name), dtype, function)
            for f in dataclasses.fields(data)
            if f.init
        }
        return dataclasses.replace(data, **changes)
    return data


def move_data_to_device(data: Any, device: torch.device | str) -> Any:
    """Move every tensor, module and other object with a ``to(device)`` method in ``data`` to ``device``.

    Custom batch classes (a Hugging Face ``BatchEncoding``, a graph ``Data``, your own) are
    moved with their ``to``, whether passed themselves or inside a collection; one whose
    ``to`` returns ``None`` (it moved in place) is kept.
    """
    device = torch.device(device)
    non_blocking = device.type == "cuda"

    def move(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return obj.to(device, non_blocking=non_blocking)
        moved = obj.to(device)
        return obj if moved is None else moved

    return apply_to_collection(data, TransferableDataType, move)


def convert_tensors_to_scalars(data: Any) -> Any:
    """Turn one-element tensors into Python numbers (for loggers); other tensors raise."""

    def to_item(tensor: torch.Tensor) -> Any:
        if tensor.numel() != 1:
            raise ValueError(
                f"Only single-element tensors can be logged as a scalar, got a tensor of shape "
                f"{tuple(tensor.shape)}. Reduce it first, for example with .mean()."
            )
        return tensor.item()

    return apply_to_collection(data, torch.Tensor, to_item)


def convert_to_tensors(data: Any, device: torch.device) -> Any:
    """Numbers and NumPy arrays become tensors on ``device``; tensors are moved there (for collectives).

    A Python ``bool`` becomes an ``int64`` tensor, so a sum counts the processes where it is
    true (a ``bool`` tensor would sum to ``True``). NumPy arrays and scalars keep their dtype.
    """

    numpy = sys.modules.get("numpy")  # data can hold NumPy values only if NumPy was imported
    numpy_types: tuple[type, ...] = () if numpy is None else (numpy.ndarray, numpy.generic)

    def to_tensor(value: Any) -> torch.Tensor:
        if isinstance(value, bool):
            return torch.tensor(value, dtype=torch.int64, device=device)
        if isinstance(value, numpy_types):  # a contiguous copy (torch refuses negative strides)
            return torch.from_numpy(numpy.array(value)).to(device)  # type: ignore[union-attr]
        return torch.tensor(value, device=device)

    data = apply_to_collection(data, (int, float, *numpy_types), to_tensor)
    return move_data_to_device(data, device)


class TransferableDataType(ABC):  # noqa: B024 (an ABC for its subclass hook, not for methods)
    """Anything with a ``to(device)`` method: ``isinstance(obj, TransferableDataType)`` is
    true for tensors, modules and custom batch classes that define ``to``; what
    :func:`move_data_to_device` moves.
    """

    @classmethod
    def __subclasshook__(cls, subclass: Any) -> bool | Any:
        if cls is TransferableDataType:
            to = getattr(subclass, "to", None)
            return callable(to)
        return NotImplemented
