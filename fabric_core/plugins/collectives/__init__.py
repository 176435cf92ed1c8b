"""Lightning's ``lightning.fabric.plugins.collectives``: collective operations on a group
of processes, as objects (``setup``, ``create_group``, ``all_reduce``, ``teardown``, ...).

:class:`TorchCollective` runs them over ``torch.distributed``; :class:`SingleDeviceCollective`
is the one-process stand-in. Imported lazily (``torch.distributed`` only on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabric_core._lazy import lazy_attributes

if TYPE_CHECKING:
    from fabric_core.plugins.collectives.collective import Collective
    from fabric_core.plugins.collectives.single_device import SingleDeviceCollective
    from fabric_core.plugins.collectives.torch_collective import TorchCollective

__all__ = ["Collective", "SingleDeviceCollective", "TorchCollective"]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "Collective": "fabric_core.plugins.collectives.collective:Collective",
        "SingleDeviceCollective": "fabric_core.plugins.collectives.single_device:SingleDeviceCollective",
        "TorchCollective": "fabric_core.plugins.collectives.torch_collective:TorchCollective",
    },
)
