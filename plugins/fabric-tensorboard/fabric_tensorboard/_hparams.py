"""Hyperparameters in the shape TensorBoard's HPARAMS tab reads.

TensorBoard's hparams plugin reads three summaries from a run's event file: the
*experiment* (the names of the hyperparameters and of the metrics to show next to them),
the *session start* (this run's hyperparameter values) and the *session end* (its status).
Values must be numbers, strings or booleans, and there is no nesting, so
:func:`fabric_core.loggers.logger.flatten_params` and :func:`sanitize_params` turn what users pass into that, as
Lightning does: ``{"optimizer": {"lr": 0.1}}`` becomes ``{"optimizer/lr": 0.1}``, and
anything else becomes its ``str``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

#: Run statuses that ``finalize(status)`` receives, and the hparams plugin status each one means.
STATUSES: dict[str, str] = {
    "success": "STATUS_SUCCESS",
    "finished": "STATUS_SUCCESS",
    "failed": "STATUS_FAILURE",
    "running": "STATUS_RUNNING",
}


def sanitize_params(params: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    """Every value as a bool, int, float or str: what the hparams plugin can show.

    One-element tensors and NumPy scalars become Python numbers; anything else (``None``,
    lists, larger tensors, classes, ...) becomes its ``str``, as in Lightning.
    """
    return {key: _sanitize(value) for key, value in params.items()}


def _sanitize(value: Any) -> bool | int | float | str:
    if _is_one_number(value):
        value = value.item()
    if type(value) in (bool, int, float, str):
        return value  # type: ignore[no-any-return]
    if isinstance(value, torch.Tensor):
        return str(value.tolist())
    return str(value)


def _is_one_number(value: Any) -> bool:
    """A one-element tensor or a NumPy scalar: something ``.item()`` turns into a Python number."""
    return (isinstance(value, torch.Tensor) and value.numel() == 1) or isinstance(value, np.generic)


def experiment_summaries(params: Mapping[str, bool | int | float | str], metric_names: list[str]) -> list[Any]:
    """The *experiment* and *session start* summaries: ``params``, and the metrics shown beside them.

    Each metric name is the tag of a scalar in the same run; the HPARAMS tab shows its latest value.
    """
    from torch.utils.tensorboard.summary import hparams

    experiment, session_start, _ = hparams(dict(params), dict.fromkeys(metric_names, 0.0))  # type: ignore[no-untyped-call]
    # The third summary, a session end with status "success", is written by ``session_end_summary``
    # when the run ends, with the status it really ended with.
    return [experiment, session_start]


def session_end_summary(status: str) -> Any:
    """The *session end* summary: the run's status (see :data:`STATUSES`; unknown names are unknown)."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams.api_pb2 import Status
    from tensorboard.plugins.hparams.metadata import PLUGIN_DATA_VERSION, PLUGIN_NAME, SESSION_END_INFO_TAG
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo

    end = SessionEndInfo(status=Status.Value(STATUSES.get(status, "STATUS_UNKNOWN")), end_time_secs=time.time())
    content = HParamsPluginData(session_end_info=end, version=PLUGIN_DATA_VERSION).SerializeToString()
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=PLUGIN_NAME, content=content))
    return Summary(value=[Summary.Value(tag=SESSION_END_INFO_TAG, metadata=metadata)])
