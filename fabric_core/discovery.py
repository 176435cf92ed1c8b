"""Plugin discovery: the public API for plugin authors, tools and tests.

``fabric_core.plugins`` is Lightning's namespace (precisions, environments, io,
collectives); what discovery found lives here instead.

* :func:`discover` runs discovery once per process (lazily, on first use) and returns the
  cached :class:`Discovery`: one :class:`~fabric_core.registry.Registry` per kind and a
  :class:`PluginRecord` per entry point of the ``fabric_core`` group.
* :func:`reset` forgets the cached result (after installing a plugin in a running process,
  or between tests).
* :func:`lookup` turns a name (``lookup("strategy", "deepspeed")``) into its registry
  :class:`~fabric_core.registry.Entry`, or raises one
  :class:`~fabric_core.errors.PluginNotAvailableError` saying why and what to do.

Example, in an add-on's tests::

    from fabric_core.discovery import discover, lookup

    (record,) = discover().records_for("fabric-mylogger")
    assert record.status == "loaded", record.reason
    assert lookup("logger", "mylogger").distribution == "fabric-mylogger"

The switches (``FABRIC_DISABLE_PLUGIN_AUTOLOAD``, ``FABRIC_PLUGINS``,
``FABRIC_BLOCK_PLUGINS``) are read each time :func:`discover` is called; a changed value
runs discovery again. See docs/plugins/writing.md.
"""

from __future__ import annotations

from fabric_core._discovery import (
    CORE_DISTRIBUTION,
    GROUP,
    STATUSES,
    SWITCHES,
    Discovery,
    PluginRecord,
    discover,
    reset,
)
from fabric_core._lookup import KNOWN_ADDONS, lookup

__all__ = [
    "CORE_DISTRIBUTION",
    "GROUP",
    "KNOWN_ADDONS",
    "STATUSES",
    "SWITCHES",
    "Discovery",
    "PluginRecord",
    "discover",
    "lookup",
    "reset",
]
