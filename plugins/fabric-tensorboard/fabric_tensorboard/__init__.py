"""fabric-tensorboard: a TensorBoard metric logger for fabric-core.

This module is the add-on's entry point (``[project.entry-points.fabric_core] tensorboard =
"fabric_tensorboard"``). fabric-core imports it during discovery, in every process, so it
imports only ``fabric_core`` and the standard library. The logger lives in
:mod:`fabric_tensorboard.logger`, named by a ``"module:Class"`` string and imported only
when a run selects ``loggers="tensorboard"`` or the class is used, and TensorBoard itself is
imported only when the logger first writes.

``fabric_tensorboard.TensorBoardLogger`` resolves on first access (:pep:`562`), so that
``from fabric_tensorboard import TensorBoardLogger`` works without making discovery pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fabric_core.hookspecs import hookimpl
from fabric_core.registry import Registry

if TYPE_CHECKING:
    from fabric_tensorboard.logger import TensorBoardLogger

__version__ = "0.1.0"

#: The registered factory: a string, so that discovery never imports the logger's module.
LOGGER_FACTORY = "fabric_tensorboard.logger:TensorBoardLogger"

#: What ``Fabric(loggers="tensorboard")`` builds: ``TensorBoardLogger(root_dir="logs")``, the
#: folder the core's ``"csv"`` logger uses too.
DEFAULT_INIT_PARAMS: dict[str, Any] = {"root_dir": "logs"}


@hookimpl
def fabric_register_loggers(registry: Registry) -> None:
    registry.add(
        "tensorboard",
        LOGGER_FACTORY,
        init_params=DEFAULT_INIT_PARAMS,
        description="TensorBoard event files in logs/<name>/version_N",
    )


def __getattr__(name: str) -> Any:
    if name == "TensorBoardLogger":
        return importlib.import_module("fabric_tensorboard.logger").TensorBoardLogger
    raise AttributeError(f"module 'fabric_tensorboard' has no attribute {name!r}")


__all__ = ["DEFAULT_INIT_PARAMS", "LOGGER_FACTORY", "TensorBoardLogger", "__version__", "fabric_register_loggers"]
