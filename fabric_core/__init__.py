"""fabric-core: Lightning Fabric's API on a pluggy plugin framework.

``import fabric_core`` loads no plugin, runs no discovery and imports no torch: ``Fabric``
and the other names below are imported on first use, discovery runs on the first
``Fabric()`` or ``fabric`` CLI call. The namespaces of Lightning Fabric
(``fabric_core.strategies``, ``fabric_core.plugins``, ``fabric_core.utilities``, ...) import
their names lazily, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabric_core._lazy import lazy_attributes

if TYPE_CHECKING:
    from fabric_core.fabric import Fabric
    from fabric_core.hookspecs import hookimpl
    from fabric_core.utilities.seed import seed_everything
    from fabric_core.wrappers import is_wrapped

__version__ = "0.1.0"

__all__ = ["Fabric", "__version__", "hookimpl", "is_wrapped", "seed_everything"]

# Lazy (PEP 562): ``import fabric_core`` (and the pytest plugin in fabric_core.testing, which
# every pytest session in an environment with fabric-core loads) does not import torch.
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "Fabric": "fabric_core.fabric:Fabric",
        "hookimpl": "fabric_core.hookspecs:hookimpl",
        "seed_everything": "fabric_core.utilities.seed:seed_everything",
        "is_wrapped": "fabric_core.wrappers:is_wrapped",
    },
)
