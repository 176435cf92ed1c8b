"""Add-ons for one test, found by the real discovery, without installing anything.

:class:`PluginSandbox` (the ``fabric_plugins`` fixture) makes a module an entry point of a
distribution "installed" in a temporary folder on ``sys.path`` (a real ``.dist-info`` that
``importlib.metadata`` reads, see :class:`~fabric_core.testing.FakeSite`), and sets the
discovery switches so that it loads: with autoload off (fabric-core's own suite) it loads
next to the built-ins and no other add-on; with an allow-list (``FABRIC_PLUGINS``) it is
added to the list; with autoload on it loads next to every installed add-on. Discovery
then imports it through its entry point, checks its ``fabric-core`` requirement, calls
its registration hooks and records it, exactly as for a ``pip install``-ed add-on::

    def test_my_strategy_by_name(fabric_plugins):
        fabric_plugins.register("fabric_mine.plugin", distribution="fabric-mine")
        fabric = Fabric(accelerator="cpu", strategy="mine")
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from fabric_core.testing.distributions import COMPATIBLE, FakeSite
from fabric_core.testing.environ import clean_environment

if TYPE_CHECKING:
    from fabric_core.discovery import Discovery, PluginRecord

__all__ = ["PluginSandbox"]

_DISABLE, _ALLOW = "FABRIC_DISABLE_PLUGIN_AUTOLOAD", "FABRIC_PLUGINS"


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _switched_on(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class PluginSandbox:
    """Add-ons registered or installed for one test; undone afterwards.

    :param root: an empty folder for the fake distributions (put first on ``sys.path``).
    :param monkeypatch: the test's, which undoes ``sys.path`` and the switches.
    """

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.site = FakeSite(root, monkeypatch)
        self._monkeypatch = monkeypatch
        self._entry_points: dict[str, dict[str, str]] = {}
        self._metadata: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._selected: list[str] = []
        self._only: list[str] | None = None
        self._switches_found: tuple[bool, str | None] | None = None
        self._in_memory: dict[str, ModuleType] = {}

    @property
    def root(self) -> Path:
        """The folder on ``sys.path`` that holds the fake distributions (for ``PYTHONPATH``)."""
        return self.site.root

    def register(
        self,
        plugin: ModuleType | str,
        *,
        distribution: str | None = None,
        entry_point: str | None = None,
        version: str | None = None,
        requires: Sequence[str] = (COMPATIBLE,),
    ) -> PluginRecord:
        """Make ``plugin`` an entry point of ``distribution``, load it, and return discovery's record.

        :param plugin: a module object (one built in the test is put in ``sys.modules``
            under its ``__name__`` for the test's duration), or an import path,
            ``"package.module"`` or ``"package.module:attribute"``, importable here.
        :param distribution: the distribution it belongs to; by default the module's top
            package with ``_`` as ``-`` (``fabric_mine.plugin`` -> ``fabric-mine``). Register
            several entry points under one distribution by naming it each time.
        :param entry_point: the entry point's name (what ``FABRIC_BLOCK_PLUGINS`` accepts); by
            default the module's last component.
        :param version: the distribution's version (``"0.1.0"`` unless registered before).
        :param requires: its ``Requires-Dist`` lines; the default accepts the running core.
        :return: the record of this entry point: ``.status`` is ``"loaded"``, or says why not
            (``"failed"``, ``"incompatible"``, ``"refused"``, ...) with ``.reason``.
        :raises TypeError: for a ``plugin`` that is neither a module nor a string.
        :raises ValueError: for a module object whose name another imported module has.
        """
        if isinstance(plugin, ModuleType):
            value = plugin.__name__
            imported = sys.modules.get(value)
            if imported is None:
                sys.modules[value] = plugin
                self._in_memory[value] = plugin
            elif imported is not plugin:
                raise ValueError(
                    f"fabric_plugins.register(<module {value!r}>): another module named {value!r} is imported "
                    "already, so the entry point would load that one; give your module another name."
                )
        elif isinstance(plugin, str):
            value = plugin
        else:
            raise TypeError(
                f"fabric_plugins.register({plugin!r}): expected a module or an import path ('package.module' or "
                f"'package.module:attribute'), got {type(plugin).__name__}. To register an object, make it an "
                "attribute of a module and pass 'module:attribute'."
            )
        module_name = value.split(":", 1)[0]
        distribution = distribution or module_name.split(".", 1)[0].replace("_", "-")
        entry_point = entry_point or module_name.rsplit(".", 1)[-1]
        self._write(distribution, {entry_point: value}, version=version, requires=requires)
        return self.record(distribution, entry_point)

    def install(
        self,
        distribution: str,
        modules: Mapping[str, str],
        *,
        entry_points: Mapping[str, str] | None = None,
        version: str | None = None,
        requires: Sequence[str] = (COMPATIBLE,),
    ) -> Path:
        """Write an add-on's modules (source text) and metadata, as ``pip install`` would, and load it.

        Unlike a module object given to :meth:`register`, these modules are files: the
        processes a test starts import them too (see :meth:`environment`).

        :param modules: module name to source: ``"fabric_mine"`` (a module), ``"fabric_mine.__init__"``
            and ``"fabric_mine.strategy"`` (a package and its module).
        :param entry_points: entry-point name to ``"module"``; by default one, named after
            the first module's last component.
        :return: the distribution's ``.dist-info`` folder.
        """
        if entry_points is None:
            first = next(iter(modules), None)
            if first is None:
                raise ValueError(f"fabric_plugins.install({distribution!r}): give at least one module.")
            module = first.removesuffix(".__init__")
            entry_points = {module.rsplit(".", 1)[-1]: module}
        return self._write(distribution, dict(entry_points), version=version, requires=requires, modules=modules)

    def load_only(self, *distributions: str) -> None:
        """Load these installed add-ons, and those of this sandbox, and no other: whatever autoload says.

        In fabric-core's own suite (autoload off), ``fabric_plugins.load_only("fabric-tensorboard")``
        tests with that one add-on loaded.

        :raises ValueError: for a distribution that is not installed with a ``fabric_core`` entry point.
        """
        installed = {
            _canonical(entry.dist.metadata["Name"]): entry.dist.metadata["Name"]
            for entry in metadata.entry_points(group="fabric_core")
            if entry.dist is not None
        }
        for name in distributions:
            if _canonical(name) not in installed:
                raise ValueError(
                    f"fabric_plugins.load_only({name!r}): no distribution {name!r} with a fabric_core entry point "
                    f"is installed here (installed: {', '.join(sorted(installed.values())) or 'none'}). Install it, "
                    "or make one in the test with fabric_plugins.register(...) or .install(...)."
                )
        self._only = list(distributions)
        self._apply_switches()

    def discover(self) -> Discovery:
        """What discovery finds now (it runs again after every change made here)."""
        from fabric_core import discovery

        return discovery.discover()

    def record(self, distribution: str, entry_point: str | None = None) -> PluginRecord:
        """Discovery's record of an entry point of ``distribution`` (its only one, when ``entry_point`` is None).

        :raises LookupError: when discovery has no such record, naming those it has.
        """
        found = self.discover().records_for(distribution)
        matching = [record for record in found if entry_point is None or record.entry_point == entry_point]
        if len(matching) == 1:
            return matching[0]
        seen = ", ".join(f"{r.distribution}:{r.entry_point} [{r.status}]" for r in self.discover().records)
        wanted = distribution if entry_point is None else f"{distribution}:{entry_point}"
        problem = "several entry points; name one" if matching else "no entry point"
        raise LookupError(f"fabric_plugins.record({wanted!r}): discovery found {problem} (it found: {seen}).")

    def environment(self, **overrides: str) -> dict[str, str]:
        """An environment for a process the test starts, in which the same add-ons load.

        :func:`~fabric_core.testing.clean_environment`, with :attr:`root` first on
        ``PYTHONPATH``, then ``overrides``.

        :raises RuntimeError: when a module object was registered: it exists only in this process.
        """
        if self._in_memory:
            raise RuntimeError(
                f"fabric_plugins.environment(): {', '.join(sorted(self._in_memory))} was registered as a module "
                "object, which another process cannot import. Write it with fabric_plugins.install(...) instead."
            )
        path = os.pathsep.join(part for part in (str(self.root), os.environ.get("PYTHONPATH", "")) if part)
        return clean_environment({"PYTHONPATH": path, **overrides})

    def close(self) -> None:
        """Forget the registered modules and the cached discovery (the fixture calls this)."""
        from fabric_core import discovery

        for name, module in self._in_memory.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
        self._in_memory.clear()
        self.site.close()
        discovery.reset()

    # -- internals ---------------------------------------------------------------------------

    def _version(self, distribution: str, version: str | None) -> str:
        known = self._metadata.get(distribution)
        return version or (known[0] if known else "0.1.0")

    def _write(
        self,
        distribution: str,
        entry_points: dict[str, str],
        *,
        version: str | None,
        requires: Sequence[str],
        modules: Mapping[str, str] | None = None,
    ) -> Path:
        version = self._version(distribution, version)
        known = self._metadata.get(distribution)
        if known is not None and known[0] != version:  # one .dist-info per distribution, as pip leaves it
            shutil.rmtree(self.root / f"{distribution.replace('-', '_')}-{known[0]}.dist-info", ignore_errors=True)
        self._metadata[distribution] = (version, tuple(requires))
        merged = self._entry_points.setdefault(distribution, {})
        merged.update(entry_points)
        dist_info = self.site.add(
            distribution, version=version, modules=modules, entry_points=merged, requires=requires
        )
        if distribution not in self._selected:
            self._selected.append(distribution)
        self._apply_switches()
        return dist_info

    def _apply_switches(self) -> None:
        """Set the switches so that the selected distributions load, keeping the test's choice for the rest."""
        from fabric_core import discovery

        if self._switches_found is None:
            self._switches_found = (_switched_on(os.environ.get(_DISABLE)), os.environ.get(_ALLOW))
        autoload_off, allowed = self._switches_found
        if self._only is not None:
            names = [*self._only, *self._selected]
        elif autoload_off:
            names = list(self._selected)
        elif allowed and allowed.strip():
            names = [*(name.strip() for name in allowed.split(",") if name.strip()), *self._selected]
        else:
            names = []  # autoload on, no allow-list: everything loads already
        if names:
            self._monkeypatch.delenv(_DISABLE, raising=False)
            self._monkeypatch.setenv(_ALLOW, ",".join(dict.fromkeys(names)))
        discovery.reset()
