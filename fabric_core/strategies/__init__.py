"""Strategies: how a model, its optimizers and its checkpoints are spread over devices.

Every name of Lightning Fabric's ``lightning.fabric.strategies`` is importable from here,
lazily (the import happens on first use). ``DeepSpeedStrategy`` comes from the
fabric-deepspeed add-on and the XLA strategies from fabric-xla: without the add-on,
importing one raises an ``ImportError`` that names what to install.
``STRATEGY_REGISTRY`` is a read-only view of the registered strategy names (running plugin
discovery on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabric_core._addon_names import addons
from fabric_core._lazy import lazy_attributes

if TYPE_CHECKING:
    from fabric_core._registry_view import RegistryView
    from fabric_core.strategies.ddp import DDPStrategy
    from fabric_core.strategies.dp import DataParallelStrategy
    from fabric_core.strategies.fsdp import FSDPStrategy
    from fabric_core.strategies.model_parallel import ModelParallelStrategy
    from fabric_core.strategies.parallel import ParallelStrategy
    from fabric_core.strategies.single_device import SingleDeviceStrategy
    from fabric_core.strategies.strategy import Strategy

    STRATEGY_REGISTRY: RegistryView

__all__ = [
    "STRATEGY_REGISTRY",
    "DDPStrategy",
    "DataParallelStrategy",
    "FSDPStrategy",
    "ModelParallelStrategy",
    "ParallelStrategy",
    "SingleDeviceStrategy",
    "Strategy",
]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "Strategy": "fabric_core.strategies.strategy:Strategy",
        "SingleDeviceStrategy": "fabric_core.strategies.single_device:SingleDeviceStrategy",
        "ParallelStrategy": "fabric_core.strategies.parallel:ParallelStrategy",
        "DDPStrategy": "fabric_core.strategies.ddp:DDPStrategy",
        "DataParallelStrategy": "fabric_core.strategies.dp:DataParallelStrategy",
        "FSDPStrategy": "fabric_core.strategies.fsdp:FSDPStrategy",
        "ModelParallelStrategy": "fabric_core.strategies.model_parallel:ModelParallelStrategy",
        "STRATEGY_REGISTRY": "fabric_core._registry_view:STRATEGY_REGISTRY",
    },
    addons("DeepSpeedStrategy", "XLAStrategy", "XLAFSDPStrategy", "SingleDeviceXLAStrategy"),
)
