"""Finding plugins: entry points of the ``fabric_core`` group, loaded once per process.

Discovery is lazy (the first ``Fabric()`` or CLI call runs it, never ``import fabric_core``)
and cached. Each entry point is loaded in isolation: registered on the discovery manager
(which validates its hooks), its registration hooks called through that manager for it
alone, into registries of its own that are merged only when all succeeded. An add-on
that fails to import, whose ``fabric-core`` requirement this core does not satisfy, or whose
registration hook raises, is recorded with its reason and skipped; it only breaks a run that
selects one of its names.

Some add-ons are refused instead of loaded (status ``refused``): one that registers a name
fabric-core itself provides (the core's name keeps working), and one whose entry-point
module answers a single-owner hook that only the strategy may answer. The record's error
says so and names ``FABRIC_BLOCK_PLUGINS=<name>``.

The switches (``FABRIC_DISABLE_PLUGIN_AUTOLOAD``, ``FABRIC_PLUGINS``,
``FABRIC_BLOCK_PLUGINS``) are read and checked in :mod:`fabric_core._switches`. The public
API is :mod:`fabric_core.discovery`.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from fabric_core import hookspecs
from fabric_core._plugin_manager import FabricPluginManager
from fabric_core._requirements import CORE_DISTRIBUTION, canonical, core_version, incompatibility
from fabric_core._switches import BLOCK, SWITCHES, Switches
from fabric_core.commands import CORE_COMMANDS, Commands
from fabric_core.errors import FabricPluginWarning, PluginValidationError, ReservedNameError
from fabric_core.registry import KINDS, Registry

__all__ = ["CORE_DISTRIBUTION", "GROUP", "STATUSES", "SWITCHES", "Discovery", "PluginRecord", "discover", "reset"]

GROUP = hookspecs.PROJECT_NAME
_BUILTINS_MODULE = "fabric_core._builtins"

#: What discovery can do with an entry point: :attr:`PluginRecord.status` is one of these.
STATUSES: tuple[str, ...] = ("loaded", "disabled", "not-allowed", "blocked", "incompatible", "refused", "failed")


@dataclass
class PluginRecord:
    """What discovery did with one entry point.

    ``status`` is one of :data:`STATUSES`: ``loaded``, ``disabled`` (autoload off),
    ``not-allowed`` (outside ``FABRIC_PLUGINS``), ``blocked`` (``FABRIC_BLOCK_PLUGINS``),
    ``incompatible`` (its ``fabric-core`` requirement is not met), ``refused`` (it breaks a
    rule of the hook contract: it registers a name fabric-core provides, or answers a
    single-owner hook) or ``failed`` (loading or registering raised). ``error`` holds the
    exception of a refused or failed plugin, with its traceback.
    """

    distribution: str
    version: str
    entry_point: str
    value: str
    status: str = "loaded"
    reason: str = ""
    error: BaseException | None = None
    provides: dict[str, list[str]] = field(default_factory=dict)
    aliases: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    hooks: list[str] = field(default_factory=list)
    module: ModuleType | None = field(default=None, repr=False)

    @property
    def plugin_name(self) -> str:
        """The name its module is registered under on plugin managers (``"fabric-x:x"``)."""
        return f"{self.distribution}:{self.entry_point}"

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (``fabric plugins --json``)."""
        return {
            "distribution": self.distribution,
            "version": self.version,
            "entry_point": f"{self.entry_point} = {self.value}",
            "status": self.status,
            "reason": self.reason,
            "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
            "provides": self.provides,
            "aliases": self.aliases,
            "hooks": self.hooks,
        }


@dataclass
class Discovery:
    """The cached result: one registry per kind, a record per entry point, and the
    ``fabric`` subcommands and checkpoint formats plugins added."""

    registries: dict[str, Registry]
    records: list[PluginRecord]
    commands: Commands = field(default_factory=Commands)

    def registry(self, kind: str) -> Registry:
        """The registry of ``kind`` (``"strategy"``, ...)."""
        return self.registries[kind]

    def records_for(self, distribution: str) -> list[PluginRecord]:
        """The records of ``distribution``'s entry points (any spelling of its name)."""
        wanted = canonical(distribution)
        return [record for record in self.records if canonical(record.distribution) == wanted]

    def runtime_plugins(self) -> list[tuple[str, ModuleType]]:
        """Loaded plugin modules that implement behaviour or event hooks (registered on every Fabric)."""
        registration = set(hookspecs.REGISTRATION_HOOKS.values()) | {"fabric_register_commands"}
        return [
            (record.plugin_name, record.module)
            for record in self.records
            if record.module is not None and any(hook not in registration for hook in record.hooks)
        ]


_cache: Discovery | None = None
_cache_switches: tuple[str | None, ...] = ()
_lock = threading.Lock()


def discover(refresh: bool = False) -> Discovery:
    """Return the process-wide discovery result, running discovery on first use.

    The result is cached for as long as the switch variables keep their values; changing
    one (a test, or a program that sets them after importing) runs discovery again.
    """
    global _cache, _cache_switches
    switches = tuple(os.environ.get(name) for name in SWITCHES)
    with _lock:
        if _cache is None or refresh or switches != _cache_switches:
            _cache = _run_discovery()
            _cache_switches = switches
        return _cache


def reset() -> None:
    """Forget the cached result (tests, or after installing a plugin in a running process)."""
    global _cache
    with _lock:
        _cache = None


def _entry_points() -> list[tuple[str, str, metadata.EntryPoint, metadata.Distribution | None]]:
    """``(distribution, version, entry point, dist)`` for the group, fabric-core's first."""
    found = []
    seen: set[tuple[str, str]] = set()
    for entry_point in metadata.entry_points(group=GROUP):
        dist = entry_point.dist
        name = dist.metadata["Name"] if dist is not None else "unknown"
        version = dist.version if dist is not None else "unknown"
        key = (canonical(name), entry_point.name)
        if key in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(key)
        found.append((name, version, entry_point, dist))
    found.sort(key=lambda item: (canonical(item[0]) != CORE_DISTRIBUTION, canonical(item[0]), item[2].name))
    return found


def _run_discovery() -> Discovery:
    switches = Switches.read()
    manager = FabricPluginManager()
    registries = {kind: Registry(kind) for kind in KINDS}
    commands = Commands()
    records: list[PluginRecord] = []

    entry_points = _entry_points()
    switches.check_names((name, entry_point.name) for name, _, entry_point, _ in entry_points)
    if not any(canonical(name) == CORE_DISTRIBUTION for name, *_ in entry_points):
        # Running from a source tree that was never installed: there is no metadata to
        # read, so load the built-ins module by its name, the same module the core's
        # entry point names.
        record = PluginRecord(CORE_DISTRIBUTION, core_version(), "builtins", _BUILTINS_MODULE)
        _load(record, lambda: importlib.import_module(_BUILTINS_MODULE), manager, registries, commands)
        records.append(record)

    for name, version, entry_point, dist in entry_points:
        record = PluginRecord(name, version, entry_point.name, entry_point.value)
        records.append(record)
        is_core = canonical(name) == CORE_DISTRIBUTION
        skip = None if is_core else switches.skip_reason(name, entry_point.name)
        if skip is None and dist is not None and not is_core:
            problem = incompatibility(dist)
            if problem is not None:
                skip = ("incompatible", problem)
                warnings.warn(
                    FabricPluginWarning(f"Skipping plugin {name}: {problem}.", distribution=name), stacklevel=3
                )
        if skip is not None:
            record.status, record.reason = skip
            continue
        _load(record, entry_point.load, manager, registries, commands)

    _note_conflicts(registries, records)
    return Discovery(registries=registries, records=records, commands=commands)


def _note_conflicts(registries: dict[str, Registry], records: list[PluginRecord]) -> None:
    """Warn about names two add-ons registered, and note each on both records."""
    for registry in registries.values():
        for entry_name, entries in registry.conflicts.items():
            warnings.warn(
                FabricPluginWarning(registry.conflict_message(entry_name), distribution=entries[-1].distribution),
                stacklevel=4,
            )
            for entry in entries:
                others = " and ".join(e.distribution for e in entries if e.distribution != entry.distribution)
                for record in records:
                    # ``provides`` is keyed by the plural ("strategies"), the registry by the kind.
                    if record.distribution == entry.distribution and entry_name in record.provides.get(
                        KINDS[registry.kind], []
                    ):
                        record.reason = (record.reason + "; " if record.reason else "") + (
                            f"{registry.kind} {entry_name!r} conflicts with {others}"
                        )


def _load(
    record: PluginRecord,
    loader: Callable[[], Any],
    manager: FabricPluginManager,
    registries: dict[str, Registry],
    commands: Commands,
) -> None:
    """Import one entry point, validate it, and run its registration hooks into ``registries``.

    Entries go into registries of the plugin's own first, so a plugin whose hook raises
    half-way, or that breaks a rule, leaves nothing behind.
    """
    module = None
    try:
        module = loader()
        manager.register(module, name=record.plugin_name)  # unknown hooks or arguments raise here
        record.hooks = manager.hook_names(module)
        is_core = canonical(record.distribution) == CORE_DISTRIBUTION
        if not is_core:
            _check_single_owner_hooks(record, manager, module)
        # Through the manager, for this plugin alone (the others' hooks ran when they loaded).
        others = [plugin for plugin in manager.get_plugins() if plugin is not module]
        own = {kind: Registry(kind, distribution=record.distribution) for kind in KINDS}
        for kind, hook_name in hookspecs.REGISTRATION_HOOKS.items():
            manager.subset_hook_caller(hook_name, remove_plugins=others)(registry=own[kind])
        for kind, registry in own.items():
            _check_names(record, registry, registries[kind], is_core)
        own_commands = Commands(distribution=record.distribution)
        manager.subset_hook_caller("fabric_register_commands", remove_plugins=others)(commands=own_commands)
        _check_commands(record, own_commands, commands)
    except Exception as err:
        if module is not None and manager.is_registered(module):
            manager.unregister(module)
        refused = record.status == "refused"  # set by the checks of the contract's rules just before raising
        record.status = "refused" if refused else "failed"
        record.error = err
        record.reason = str(err) if refused else f"{type(err).__name__}: {err}"
        what = "was refused" if refused else "failed to load and was skipped"
        warnings.warn(
            FabricPluginWarning(
                f"Plugin {record.distribution} (entry point {record.entry_point} = {record.value}) {what}: "
                f"{record.reason}",
                distribution=record.distribution,
            ),
            stacklevel=4,
        )
        return
    record.module = module
    for kind, registry in own.items():
        registries[kind].merge(registry)
        if len(registry):
            record.provides[KINDS[kind]] = registry.names()
        if registry.aliases:
            record.aliases[KINDS[kind]] = {
                name: list(alias.targets) for name, alias in sorted(registry.aliases.items())
            }
    commands.merge(own_commands)
    if own_commands.names():
        record.provides["commands"] = own_commands.names()


def _block_hint(record: PluginRecord) -> str:
    return (
        f"Block it with {BLOCK}={record.distribution} (or its entry-point name {record.entry_point}) to silence this, "
        f"and report it to the authors of {record.distribution}"
    )


def _check_single_owner_hooks(record: PluginRecord, manager: FabricPluginManager, module: object) -> None:
    """Refuse an entry-point module that answers a hook only the active strategy may answer."""
    for hook_name in hookspecs.SINGLE_OWNER_HOOKS:
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            if impl.plugin is module and not (impl.wrapper or impl.hookwrapper):
                record.status = "refused"
                raise PluginValidationError(
                    f"{record.distribution} implements {hook_name} without wrapper=True, but only the active "
                    "strategy may answer it (single-owner rule), so every Fabric would refuse to start with it; "
                    f"it was not loaded. {_block_hint(record)}: the hook must be @hookimpl(wrapper=True).",
                    plugin=impl.plugin,
                    plugin_name=record.plugin_name,
                    hook=hook_name,
                )


def _check_names(record: PluginRecord, own: Registry, registry: Registry, is_core: bool) -> None:
    """Refuse names fabric-core already has, and names that would make :meth:`Registry.merge` raise."""
    kind = own.kind
    for name in [*own.names(), *own.aliases]:
        existing = registry.get(name) if name in registry else registry.aliases.get(name)
        if existing is None:
            if name in registry.conflicts and name in own.aliases:
                raise ValueError(f"{kind} alias {name!r} is already registered by two distributions.")
            continue
        if canonical(existing.distribution) == CORE_DISTRIBUTION and not is_core:
            record.status = "refused"
            raise ReservedNameError(
                f"{record.distribution} registers {kind} {name!r}, a name fabric-core provides; built-in names "
                f"cannot be replaced, so fabric-core's {name!r} stays and {record.distribution} was not loaded. "
                f"{_block_hint(record)}: an add-on must register names of its own.",
                kind=kind,
                name=name,
                distribution=record.distribution,
            )
        if existing.distribution == record.distribution:
            # Two entry points of one distribution giving the same name: fail this one
            # instead of letting the merge raise outside the isolation of _load.
            raise ValueError(
                f"{kind} {name!r} is registered twice by {record.distribution} (by two of its entry points); "
                "register each name from one entry point only."
            )
        if name in own.aliases or name in registry.aliases:
            raise ValueError(
                f"{kind} {name!r} of {record.distribution} clashes with {existing.distribution}'s {name!r} "
                "(one of them is an alias); choose another name."
            )


def _check_commands(record: PluginRecord, own: Commands, commands: Commands) -> None:
    """Refuse a ``fabric`` command name the core has; fail one another plugin took first."""
    for what, name, owner in commands.clashes(own):
        if owner == CORE_DISTRIBUTION or name in CORE_COMMANDS:
            record.status = "refused"
            raise ReservedNameError(
                f"{record.distribution} adds the {what} {name!r}, which fabric-core's own `fabric` command has; "
                f"it was not loaded. {_block_hint(record)}: an add-on must use names of its own.",
                kind=what,
                name=name,
                distribution=record.distribution,
            )
        raise ValueError(
            f"{record.distribution} adds the {what} {name!r}, which {owner} added first. Uninstall one of them, "
            f"or block one with FABRIC_BLOCK_PLUGINS=<distribution>."
        )
