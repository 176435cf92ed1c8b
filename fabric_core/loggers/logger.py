"""The logger interface. Loggers receive metrics through the ``fabric_log`` hook."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from argparse import Namespace
from collections.abc import Mapping
from typing import Any

from fabric_core.hookspecs import hookimpl


class Logger(ABC):
    """Writes metrics and hyperparameters somewhere (files, a tracking server, ...).

    Fabric registers each logger as a plugin; :meth:`fabric_log` forwards
    ``fabric.log``/``fabric.log_dict`` to :meth:`log_metrics`, and ``fabric_on_teardown``
    to :meth:`finalize` (``"failed"`` when ``fabric.launch(fn)`` ends with an exception).
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
    def fabric_on_teardown(self) -> None:
        # Teardown runs in the ``finally`` of ``fabric.launch(fn)``: an exception in flight
        # means the run failed.
        self.finalize("failed" if sys.exc_info()[0] is not None else "success")
