"""The logger's arguments checked up front, and hyperparameters in the shape a W&B run config holds.

``wandb.init`` runs lazily, on global rank 0, at the first write: a bad argument found there
would surface mid-run, on one rank, in W&B's words. What can be checked without importing
``wandb`` is checked when the logger is made, and each refusal names the argument.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Characters W&B refuses in a run id (``wandb.Settings.run_id``).
_RESERVED_ID_CHARACTERS = ":;,#?/'"
#: W&B's rule for artifact names (``wandb.Artifact``), and its length limit.
_ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9_\-.]+$")
_ARTIFACT_NAME_MAX = 128


def one_of(first_name: str, first: Any, second_name: str, second: Any) -> Any:
    """The value of two arguments that mean the same (``version``/``id``, ``save_dir``/``dir``).

    Either may be given, or both with the same value; two different values are refused.
    """
    if first is not None and second is not None and _comparable(first) != _comparable(second):
        raise ValueError(
            f"WandbLogger got {first_name}={first!r} and {second_name}={second!r}, which mean the same thing "
            f"({first_name} is Lightning's name for {second_name}). Pass one of them."
        )
    return first if first is not None else second


def _comparable(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, (str, os.PathLike)) else value


def check_run_id(run_id: Any) -> str | None:
    """``run_id`` as W&B accepts it (a non-empty string without its reserved characters), or a ``ValueError``."""
    if run_id is None:
        return None
    if not isinstance(run_id, str):
        raise TypeError(f"WandbLogger(id={run_id!r}): a run id is a string, got {type(run_id).__name__}.")
    reserved = sorted({char for char in run_id if char in _RESERVED_ID_CHARACTERS})
    if not run_id.strip() or run_id != run_id.strip() or reserved:
        why = f"it contains {''.join(reserved)!r}" if reserved else "it is empty or starts or ends with whitespace"
        raise ValueError(
            f"WandbLogger(id={run_id!r}): W&B refuses this run id: {why}. A run id is letters, digits, "
            f"'-', '_' and '.', without {_RESERVED_ID_CHARACTERS!r}; leave it out and W&B makes one."
        )
    return run_id


def check_artifact_name(name: str | None) -> str | None:
    """``checkpoint_name`` as W&B accepts an artifact name, or a ``ValueError`` now rather than at the first save."""
    if name is None:
        return None
    if not isinstance(name, str) or not _ARTIFACT_NAME.match(name) or len(name) > _ARTIFACT_NAME_MAX:
        raise ValueError(
            f"WandbLogger(checkpoint_name={name!r}): W&B names an artifact with letters, digits, '-', '_' and '.' "
            f"only, at most {_ARTIFACT_NAME_MAX} characters. Pick such a name, e.g. 'model-resnet50'."
        )
    return name


def check_experiment(experiment: Any, run_arguments: list[str]) -> None:
    """A run given as ``experiment=`` is a W&B run, and comes without arguments for starting one."""
    if not (callable(getattr(experiment, "log", None)) and hasattr(experiment, "config")):
        raise TypeError(
            f"WandbLogger(experiment={experiment!r}): expected a W&B run (what wandb.init() returns), got a "
            f"{type(experiment).__name__}. Leave experiment out and the logger starts a run itself."
        )
    if run_arguments:
        raise ValueError(
            f"WandbLogger(experiment=...) logs into the run you started, so {run_arguments}, which configure a run "
            "the logger starts itself, would have no effect. Pass them to wandb.init() instead, or leave "
            "experiment out."
        )


def check_log_model(log_model: Any) -> bool | str:
    if log_model is True or log_model is False or log_model == "all":
        return log_model  # type: ignore[no-any-return]
    raise ValueError(
        f"WandbLogger(log_model={log_model!r}): expected False (no checkpoints), True (each checkpoint path saved "
        "during the run, uploaded when it ends successfully) or 'all' (every save, uploaded as it is written)."
    )


def check_mode(offline: bool, mode: Any) -> str | None:
    """The ``mode`` for ``wandb.init``: ``"offline"`` when ``offline``, else the ``mode`` given (or ``None``)."""
    if mode is not None and mode not in ("online", "offline", "disabled", "shared"):
        raise ValueError(
            f"WandbLogger(mode={mode!r}): W&B's modes are 'online', 'offline', 'disabled' and 'shared'. "
            "For a local run that reaches no server, pass offline=True."
        )
    if offline:
        if mode not in (None, "offline"):
            raise ValueError(
                f"WandbLogger(offline=True, mode={mode!r}) asks for two modes. Pass offline=True, or mode={mode!r}."
            )
        return "offline"
    return mode  # type: ignore[no-any-return]


def config_values(params: Mapping[Any, Any] | Namespace) -> dict[str, Any]:
    """Hyperparameters as a W&B config holds them: JSON values, nesting kept.

    Namespaces and dataclass instances become dicts (at any depth); one-element tensors and
    NumPy scalars become numbers, larger ones lists; functions and classes become their name
    (Lightning calls a callable to log what it returns, which runs user code: not here);
    paths and enums their value; anything else its ``str``.
    """
    items = vars(params) if isinstance(params, Namespace) else params
    return {str(key): _value(value) for key, value in items.items()}


def _value(value: Any) -> Any:
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, Namespace) or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        value = vars(value) if isinstance(value, Namespace) else dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(key): _value(item) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):
        return [_value(item) for item in sorted(value, key=repr)]  # a set has no order: make one
    if isinstance(value, (list, tuple)):
        return [_value(item) for item in value]
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, (np.ndarray, np.generic)):
        return value.item() if value.size == 1 else value.tolist()
    if isinstance(value, enum.Enum):
        return _value(value.value)
    for plain in (bool, int, float, str):  # subclasses of the JSON types, as the type itself
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, Path):
        return str(value)
    if callable(value) and hasattr(value, "__name__"):
        return value.__name__
    return str(value)
