"""fabric-core: Lightning Fabric's API on a pluggy plugin framework.

``import fabric_core`` loads no plugin and runs no discovery: that happens on the first
``Fabric()`` or ``fabric`` CLI call. The namespaces of Lightning Fabric
(``fabric_core.strategies``, ``fabric_core.plugins``, ``fabric_core.utilities``, ...) import
their names lazily, on first use.
"""

from fabric_core.fabric import Fabric
from fabric_core.hookspecs import hookimpl
from fabric_core.utilities.seed import seed_everything
from fabric_core.wrappers import is_wrapped

__version__ = "0.1.0"

__all__ = ["Fabric", "__version__", "hookimpl", "is_wrapped", "seed_everything"]
