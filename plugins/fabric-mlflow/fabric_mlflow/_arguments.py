"""The checks of ``MLFlowLogger``'s arguments: each wrong one is refused by name, with what it takes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def check_arguments(
    experiment_name: Any,
    run_name: Any,
    tracking_uri: Any,
    tags: Any,
    log_model: Any,
    run_id: Any,
    synchronous: Any,
) -> None:
    if not isinstance(experiment_name, str) or not experiment_name:
        raise TypeError(f"MLFlowLogger(experiment_name={experiment_name!r}): expected a non-empty string.")
    for argument, value in (("run_name", run_name), ("tracking_uri", tracking_uri), ("run_id", run_id)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"MLFlowLogger({argument}={value!r}): expected a string or None.")
    if tags is not None and not isinstance(tags, Mapping):
        raise TypeError(f"MLFlowLogger(tags={tags!r}): expected a dict of tag names to values, or None.")
    if log_model not in (True, False, "all"):
        raise ValueError(
            f"MLFlowLogger(log_model={log_model!r}): expected True (log the checkpoints fabric.save wrote when the "
            "run ends), 'all' (log each one when it is written) or False."
        )
    if synchronous is not None and not isinstance(synchronous, bool):
        raise TypeError(f"MLFlowLogger(synchronous={synchronous!r}): expected True, False or None.")
