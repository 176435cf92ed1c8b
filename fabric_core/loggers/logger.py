"""The logger interface. Loggers receive metrics through the ``fabric_log`` hook."""

from __future__ import annotations

import dataclasses
import re
from abc import ABC, abstractmethod
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fabric_core.hookspecs import hookimpl

_VERSION = re.compile(r"^version_(\d+)$")


class Logger(ABC):
    """Writes metrics and hyperparameters somewhere (files, a tracking server, ...).

    Fabric registers each logger as a plugin; :meth:`fabric_log` forwards
    ``fabric.log``/``fabric.log_dict`` to :meth:`log_metrics`, and ``fabric_on_teardown``
    to :meth:`finalize` with the run's status (``"failed"`` when ``fabric.launch(fn)`` or the
    script ended with an uncaught exception, else ``"success"``).
    Implementations decide themselves on which ranks they write (usually global rank 0
    only, with :func:`~fabric_core.utilities.rank_zero.rank_zero_only`).
    """

    @property
    @abstractmethod
    def name(self) -> str | None:
        """The experiment name."""

    @property
    @abstractmethod
    def version(self) -> int | str | None:
        """The version of the experiment (``version_N``)."""

    @property
    def root_dir(self) -> str | None:
        """The folder all versions of the experiment are saved under."""
        return None

    @property
    def log_dir(self) -> str | None:
        """The folder of this version."""
        return None

    @property
    def group_separator(self) -> str:
        """The separator of metric groups (``"train/loss"``)."""
        return "/"

    @abstractmethod
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record ``metrics`` at ``step``."""

    @abstractmethod
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        """Record the run's hyperparameters."""

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Record the model's graph, where the backend can."""

    def save(self) -> None:
        """Write buffered data."""

    def finalize(self, status: str) -> None:
        """The run ended with ``status`` (``"success"``, ``"failed"``): write everything."""
        self.save()

    @hookimpl
    def fabric_log(self, metrics: Mapping[str, Any], step: int | None) -> None:
        self.log_metrics(metrics, step)

    @hookimpl
    def fabric_on_teardown(self, status: str) -> None:
        self.finalize(status)


def next_version(folder: str | Path) -> int:
    """The next free ``version_N`` number under ``folder`` (0 when it has none or does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    found = [
        int(match.group(1)) for child in folder.iterdir() if child.is_dir() and (match := _VERSION.match(child.name))
    ]
    return max(found) + 1 if found else 0


def flatten_params(params: Mapping[Any, Any] | Namespace, delimiter: str = "/", parent: str = "") -> dict[str, Any]:
    """Nested mappings, ``Namespace``\\ s and dataclass instances as one flat dict, keys joined by ``delimiter``.

    What loggers whose backend takes flat parameters do with ``log_hyperparams`` (as
    Lightning does): ``{"optimizer": {"lr": 0.1}}`` becomes ``{"optimizer/lr": 0.1}``;
    other values are kept as they are.
    """
    items = vars(params) if isinstance(params, Namespace) else params
    flat: dict[str, Any] = {}
    for key, value in items.items():
        name = f"{parent}{delimiter}{key}" if parent else str(key)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        if isinstance(value, (Mapping, Namespace)):
            flat.update(flatten_params(value, delimiter, name))
        else:
            flat[name] = value
    return flat


def is_logger_like(obj: object) -> bool:
    """Whether ``obj`` can serve as a logger, duck typed as in Lightning: ``log_metrics`` and ``log_hyperparams``."""
    return callable(getattr(obj, "log_metrics", None)) and callable(getattr(obj, "log_hyperparams", None))


class LoggerAdapter:
    """Feeds a logger that is not a :class:`Logger` (a Lightning logger, a ``Mock``) from Fabric's hooks.

    Metrics go to its ``log_metrics(metrics=..., step=...)``; at teardown its ``finalize(status)``
    is called when it has one.
    """

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    @hookimpl
    def fabric_log(self, metrics: Mapping[str, Any], step: int | None) -> None:
        self.logger.log_metrics(metrics=metrics, step=step)

    @hookimpl
    def fabric_on_teardown(self, status: str) -> None:
        finalize = getattr(self.logger, "finalize", None)
        if callable(finalize):
            finalize(status)
