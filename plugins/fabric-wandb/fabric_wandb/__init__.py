"""fabric-wandb: a Weights & Biases metric logger for fabric-core.

This module is the add-on's entry point (``[project.entry-points.fabric_core] wandb =
"fabric_wandb"``). fabric-core imports it during discovery, in every process, so it imports
only ``fabric_core`` and the standard library. The logger lives in :mod:`fabric_wandb.logger`,
named by a ``"module:Class"`` string and imported only when a run selects ``loggers="wandb"``
or the class is used, and ``wandb`` itself is imported only when global rank 0 starts its run.

``fabric_wandb.WandbLogger`` resolves on first access (:pep:`562`), so that
``from fabric_wandb import WandbLogger`` works without making discovery pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fabric_core.hookspecs import hookimpl
from fabric_core.registry import Registry

if TYPE_CHECKING:
    from fabric_wandb.logger import WandbLogger

__version__ = "0.1.0"

#: The registered factory: a string, so that discovery never imports the logger's module.
LOGGER_FACTORY = "fabric_wandb.logger:WandbLogger"

#: What ``Fabric(loggers="wandb")`` builds: ``WandbLogger()``, W&B's own defaults (the run
#: folder under ``$WANDB_DIR`` or the working directory, online unless ``WANDB_MODE`` says otherwise).
DEFAULT_INIT_PARAMS: dict[str, Any] = {}


@hookimpl
def fabric_register_loggers(registry: Registry) -> None:
    registry.add(
        "wandb",
        LOGGER_FACTORY,
        init_params=DEFAULT_INIT_PARAMS,
        description="Weights & Biases runs (online, or offline in ./wandb)",
    )


def __getattr__(name: str) -> Any:
    if name == "WandbLogger":
        return importlib.import_module("fabric_wandb.logger").WandbLogger
    raise AttributeError(f"module 'fabric_wandb' has no attribute {name!r}")


__all__ = ["DEFAULT_INIT_PARAMS", "LOGGER_FACTORY", "WandbLogger", "__version__", "fabric_register_loggers"]
