"""Metric loggers. The CSV logger ships with the core; others come as add-ons.

The names are imported lazily, on first use. ``TensorBoardLogger`` is Lightning's name for
the logger of the fabric-tensorboard add-on: without the add-on, importing it raises an
``ImportError`` that names what to install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabric_core._addon_names import addons
from fabric_core._lazy import lazy_attributes

if TYPE_CHECKING:
    from fabric_core.loggers.csv_logs import CSVLogger
    from fabric_core.loggers.logger import Logger

__all__ = ["CSVLogger", "Logger"]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "CSVLogger": "fabric_core.loggers.csv_logs:CSVLogger",
        "Logger": "fabric_core.loggers.logger:Logger",
    },
    addons("TensorBoardLogger"),
)
