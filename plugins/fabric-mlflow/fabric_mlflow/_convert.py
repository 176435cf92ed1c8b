"""What users log, in the shape MLflow stores: flat string parameters, float metrics, valid names.

MLflow keeps a parameter as a string of at most ``MAX_PARAM_VAL_LENGTH`` characters (6000
in MLflow 2 and 3; 250 in MLflow 1, which Lightning still truncates to), a metric as a
64-bit float, and accepts metric names made of letters, digits and ``_ - . / :`` and spaces
(no ``:`` on Windows) that do not look like a path going somewhere else (``a//b``,
``../x``). These functions turn what users pass into that, as Lightning's ``MLFlowLogger``
does, except that nothing is dropped or shortened without a warning saying so.
"""

from __future__ import annotations

import numbers
import operator
import posixpath
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

#: MLflow's longest parameter value when the installed MLflow does not say (MLflow 2 and 3).
DEFAULT_PARAM_LENGTH = 6000

_INVALID_NAME_CHARACTERS = re.compile(r"[^\w/.\- ]" if sys.platform == "win32" else r"[^\w/.\- :]")


def param_string(value: Any) -> str:
    """``value`` as MLflow shows a parameter: one-element tensors and NumPy scalars as their number."""
    if (isinstance(value, torch.Tensor) and value.numel() == 1) or isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, torch.Tensor):
        value = value.tolist()
    return str(value)


def param_strings(params: Mapping[str, Any], max_length: int) -> tuple[dict[str, str], list[str]]:
    """Every value as a string of at most ``max_length`` characters, and the names of those that were cut."""
    values: dict[str, str] = {}
    truncated: list[str] = []
    for key, value in params.items():
        text = param_string(value)
        if len(text) > max_length:
            text = text[:max_length]
            truncated.append(key)
        values[key] = text
    return values, truncated


def metric_entries(metrics: Mapping[str, Any], prefix: str, join_char: str) -> list[tuple[str, str, float]]:
    """``(name as given, name for MLflow, value)`` of each metric, a dict value flattened with ``/``.

    ``prefix`` goes in front of every name, joined with ``join_char``. A value that is not a
    number raises a ``ValueError`` naming the metric, before anything is sent.
    """
    entries = []
    for name, value in _flatten_metrics(metrics):
        full = f"{prefix}{join_char}{name}" if prefix else name
        entries.append((full, valid_name("metric", full), metric_value(full, value)))
    return entries


def _flatten_metrics(metrics: Mapping[Any, Any], parent: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in metrics.items():
        name = f"{parent}/{key}" if parent else str(key)
        if isinstance(value, Mapping):
            yield from _flatten_metrics(value, name)
        else:
            yield name, value


def metric_value(name: str, value: Any) -> float:
    """``value`` as the 64-bit float MLflow stores, or a ``ValueError`` that names the metric."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"MLFlowLogger cannot log metric {name!r}: it is a tensor of {value.numel()} elements "
                f"(shape {tuple(value.shape)}), and an MLflow metric is one number. Reduce it first, e.g. with .mean()."
            )
        value = value.item()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, numbers.Real):  # bool, int, float, fractions: MLflow itself refuses bool
        return float(value)
    raise ValueError(
        f"MLFlowLogger cannot log metric {name!r}: its value {value!r} is a {type(value).__name__}, and an MLflow "
        "metric is a number. Log a number or a one-element tensor; put text in a tag "
        "(logger.experiment.set_tag(logger.run_id, key, text)) or a parameter (logger.log_hyperparams)."
    )


def valid_name(what: str, name: str) -> str:
    """``name`` of a metric or parameter without the characters MLflow refuses (as Lightning does).

    Raises a ``ValueError`` when what is left is not a name MLflow accepts. The caller warns
    when the name changed.
    """
    cleaned = _INVALID_NAME_CHARACTERS.sub("", name)
    normalized = posixpath.normpath(cleaned) if cleaned else ""
    if not cleaned or normalized != cleaned or normalized == "." or normalized.startswith(("..", "/")):
        raise ValueError(
            f"MLFlowLogger cannot log {what} {name!r}: MLflow stores names like file paths, and {cleaned!r} is not "
            "one it accepts (empty, or with '//', a leading or trailing '/', '.' or '..' parts). Name it like "
            "'train/loss'."
        )
    return cleaned


def checked_step(step: Any) -> int:
    """``step`` as an int, or a ``TypeError`` (MLflow's steps are 64-bit integers)."""
    if isinstance(step, torch.Tensor) and step.numel() == 1 and not step.is_floating_point():
        step = step.item()
    try:
        return operator.index(step)
    except TypeError:
        raise TypeError(
            f"MLFlowLogger.log_metrics(step={step!r}): MLflow's step is an integer, got a {type(step).__name__}. "
            "Pass an int, such as the number of optimizer steps taken."
        )
