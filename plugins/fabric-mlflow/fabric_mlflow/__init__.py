"""fabric-mlflow: an MLflow metric logger for fabric-core.

This module is the add-on's entry point (``[project.entry-points.fabric_core] mlflow =
"fabric_mlflow"``). fabric-core imports it during discovery, in every process, so it imports
only ``fabric_core`` and the standard library. The logger lives in
:mod:`fabric_mlflow.logger`, named by a ``"module:Class"`` string and imported only when a
run selects ``loggers="mlflow"`` or the class is used, and MLflow itself is imported only
when the logger first talks to the tracking store.

``fabric_mlflow.MLFlowLogger`` resolves on first access (:pep:`562`), so that
``from fabric_mlflow import MLFlowLogger`` works without making discovery pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fabric_core.hookspecs import hookimpl
from fabric_core.registry import Registry

if TYPE_CHECKING:
    from fabric_mlflow.logger import MLFlowLogger

__version__ = "0.1.0"

#: The registered factory: a string, so that discovery never imports the logger's module.
LOGGER_FACTORY = "fabric_mlflow.logger:MLFlowLogger"


@hookimpl
def fabric_register_loggers(registry: Registry) -> None:
    registry.add(
        "mlflow",
        LOGGER_FACTORY,
        description="MLflow runs: a local SQLite store in ./mlruns, or MLFLOW_TRACKING_URI",
    )


def __getattr__(name: str) -> Any:
    if name == "MLFlowLogger":
        return importlib.import_module("fabric_mlflow.logger").MLFlowLogger
    raise AttributeError(f"module 'fabric_mlflow' has no attribute {name!r}")


__all__ = ["LOGGER_FACTORY", "MLFlowLogger", "__version__", "fabric_register_loggers"]
