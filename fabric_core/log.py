"""The library's own log lines, for fabric-core and its add-ons: ``get_logger(__name__)``.

Messages go through structlog, carry ``rank``, ``world_size`` and (once a Fabric has set
the process up) ``step``, and print on global rank 0 only, warnings and up, unless
``FABRIC_LOG_LEVEL``, ``FABRIC_LOG_FORMAT=json`` or ``FABRIC_LOG_ALL_RANKS=1`` say
otherwise (see docs/guide/errors.md, "fabric-core's own log messages"). An add-on logs
through this so that its lines follow the same switches::

    from fabric_core.log import get_logger

    get_logger(__name__).debug("the XLA runtime decides the world size", requested=size)

These are not metrics: metrics go to loggers through ``fabric.log``.
"""

from __future__ import annotations

from fabric_core._logging import FabricLogger, get_logger

__all__ = ["FabricLogger", "get_logger"]
