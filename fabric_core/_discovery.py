"""Finding plugins: entry points of the ``fabric_core`` group, loaded once per process.

Discovery is lazy (the first ``Fabric()`` or CLI call runs it, never ``import fabric_core``)
and cached. Each entry point is loaded in isolation: an add-on that fails to import, whose
``fabric-core`` requirement this core does not satisfy, or whose registration hook raises,
is recorded with its reason and skipped; it only breaks a run that selects one of its names.

Switches, read when discovery runs:

* ``FABRIC_DISABLE_PLUGIN_AUTOLOAD=1``: load only fabric-core's own built-ins.
* ``FABRIC_PLUGINS=dist-a,dist-b``: load only these distributions (and fabric-core).
* ``FABRIC_BLOCK_PLUGINS=name,...``: skip these distributions or entry-point names.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import operator
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from fabric_core import hookspecs
from fabric_core._plugin_manager import FabricPluginManager
from fabric_core.registry import KINDS, Registry

GROUP = hookspecs.PROJECT_NAME
CORE_DISTRIBUTION = "fabric-core"
_BUILTINS_MODULE = "fabric_core._builtins"


class FabricPluginWarning(UserWarning):
    """An installed plugin was skipped (incompatible version, duplicate name, ...)."""


#: What discovery can do with an entry point: :attr:`PluginRecord.status` is one of these.
STATUSES: tuple[str, ...] = ("loaded", "disabled", "not-allowed", "blocked", "incompatible", "failed")


@dataclass
class PluginRecord:
    """What discovery did with one entry point.

    ``status`` is one of ``loaded``, ``disabled`` (autoload off), ``not-allowed`` (outside
    ``FABRIC_PLUGINS``), ``blocked`` (``FABRIC_BLOCK_PLUGINS``), ``incompatible`` (its
    ``fabric-core`` requirement is not met) or ``failed`` (loading or registering raised;
    ``error`` holds the exception with its traceback).
    """

    distribution: str
    version: str
    entry_point: str
    value: str
    status: str = "loaded"
    reason: str = ""
    error: BaseException | None = None
    provides: dict[str, list[str]] = field(default_factory=dict)
    hooks: list[str] = field(default_factory=list)
    module: ModuleType | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "distribution": self.distribution,
            "version": self.version,
            "entry_point": f"{self.entry_point} = {self.value}",
            "status": self.status,
            "reason": self.reason,
            "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
            "provides": self.provides,
            "hooks": self.hooks,
        }


@dataclass
class Discovery:
    """The cached result: one registry per kind, and a record per entry point."""

    registries: dict[str, Registry]
    records: list[PluginRecord]

    def registry(self, kind: str) -> Registry:
        return self.registries[kind]

    def records_for(self, distribution: str) -> list[PluginRecord]:
        wanted = _canonical(distribution)
        return [record for record in self.records if _canonical(record.distribution) == wanted]

    def runtime_plugins(self) -> list[tuple[str, ModuleType]]:
        """Loaded plugin modules that implement behaviour or event hooks (registered on every Fabric)."""
        registration = set(hookspecs.REGISTRATION_HOOKS.values())
        return [
            (f"{record.distribution}:{record.entry_point}", record.module)
            for record in self.records
            if record.module is not None and any(hook not in registration for hook in record.hooks)
        ]


#: The environment variables that steer discovery.
SWITCHES: tuple[str, ...] = ("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "FABRIC_PLUGINS", "FABRIC_BLOCK_PLUGINS")
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


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _env_list(variable: str) -> list[str]:
    return [item.strip() for item in os.environ.get(variable, "").split(",") if item.strip()]


def _truthy(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() in {"1", "true", "yes", "on"}


def _core_version() -> str:
    from fabric_core import __version__

    return __version__


def _skip_reason(distribution: str, entry_name: str) -> tuple[str, str] | None:
    """Why the switches skip this entry point, as ``(status, reason)``; ``None`` to load it."""
    names = {_canonical(distribution), _canonical(entry_name)}
    if _truthy("FABRIC_DISABLE_PLUGIN_AUTOLOAD"):
        return "disabled", "FABRIC_DISABLE_PLUGIN_AUTOLOAD=1 is set; unset it to load add-ons"
    allowed = _env_list("FABRIC_PLUGINS")
    if allowed and not names & {_canonical(name) for name in allowed}:
        return "not-allowed", f"not listed in FABRIC_PLUGINS={','.join(allowed)}; add {distribution} to it"
    blocked = _env_list("FABRIC_BLOCK_PLUGINS")
    if names & {_canonical(name) for name in blocked}:
        return (
            "blocked",
            f"listed in FABRIC_BLOCK_PLUGINS={','.join(blocked)}; remove it from there to load it",
        )
    return None


def _incompatibility(dist: metadata.Distribution) -> str | None:
    """A message when ``dist`` declares a fabric-core requirement this core does not meet."""
    from packaging.version import Version

    core = Version(_core_version())
    for line in dist.requires or []:
        specifier = _core_specifier(line)
        if specifier is None or _satisfies(core, specifier):
            continue
        name = dist.metadata["Name"]
        return (
            f"{name} {dist.version} requires fabric-core{specifier} but fabric-core "
            f"{core} is installed; install a {name} release made for fabric-core {core}, "
            f"or a fabric-core that matches {specifier}"
        )
    return None


_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*\(?([^;)]*)\)?\s*(;.*)?$")
_CLAUSE = re.compile(r"\s*(<=|>=|==|!=|<|>)\s*([0-9][0-9A-Za-z.+!-]*)\s*$")
_COMPARE = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


def _core_specifier(line: str) -> str | None:
    """The version specifier (``">=0.1,<1"``) of a requirement line on fabric-core; ``None`` for other lines.

    Plain lines are read here; packaging's full requirement parser (whose specifier regex
    takes ~100 ms to compile, most of a first ``Fabric()``) is only used for lines this
    does not understand.
    """
    match = _REQUIREMENT.match(line)
    if match is not None and _canonical(match.group(1)) != CORE_DISTRIBUTION:
        return None
    if match is None or match.group(3):
        return _core_specifier_by_packaging(line)
    # Written as packaging writes a SpecifierSet: clauses without spaces, sorted.
    clauses = sorted(clause.replace(" ", "") for clause in match.group(2).split(",") if clause.strip())
    return ",".join(clauses) or None


def _core_specifier_by_packaging(line: str) -> str | None:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(line)
    except InvalidRequirement:
        return None
    if _canonical(requirement.name) != CORE_DISTRIBUTION:
        return None
    if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
        return None
    return str(requirement.specifier) or None


def _satisfies(version: Any, specifier: str) -> bool:
    """Whether ``version`` meets ``specifier`` (pre-releases included, as for the core's own version)."""
    from packaging.version import Version

    clauses = [_CLAUSE.match(clause) for clause in specifier.split(",")]
    if all(clauses):
        return all(_COMPARE[clause.group(1)](version, Version(clause.group(2))) for clause in clauses if clause)
    from packaging.specifiers import SpecifierSet  # wildcards, ~=, ===: the full rules

    return SpecifierSet(specifier).contains(version, prereleases=True)


def _entry_points() -> list[tuple[str, str, metadata.EntryPoint, metadata.Distribution | None]]:
    """``(distribution, version, entry point, dist)`` for the group, fabric-core's first."""
    found = []
    seen: set[tuple[str, str]] = set()
    for entry_point in metadata.entry_points(group=GROUP):
        dist = entry_point.dist
        name = dist.metadata["Name"] if dist is not None else "unknown"
        version = dist.version if dist is not None else "unknown"
        key = (_canonical(name), entry_point.name)
        if key in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(key)
        found.append((name, version, entry_point, dist))
    found.sort(key=lambda item: (_canonical(item[0]) != CORE_DISTRIBUTION, _canonical(item[0]), item[2].name))
    return found


def _run_discovery() -> Discovery:
    manager = FabricPluginManager()
    registries = {kind: Registry(kind) for kind in KINDS}
    records: list[PluginRecord] = []

    entry_points = _entry_points()
    if not any(_canonical(name) == CORE_DISTRIBUTION for name, *_ in entry_points):
        # Running from a source tree that was never installed: there is no metadata to
        # read, so load the built-ins module by its name, the same module the core's
        # entry point names.
        record = PluginRecord(CORE_DISTRIBUTION, _core_version(), "builtins", _BUILTINS_MODULE)
        _load(record, lambda: importlib.import_module(_BUILTINS_MODULE), manager, registries)
        records.append(record)

    for name, version, entry_point, dist in entry_points:
        record = PluginRecord(name, version, entry_point.name, entry_point.value)
        records.append(record)
        is_core = _canonical(name) == CORE_DISTRIBUTION
        skip = None if is_core else _skip_reason(name, entry_point.name)
        if skip is None and dist is not None and not is_core:
            problem = _incompatibility(dist)
            if problem is not None:
                skip = ("incompatible", problem)
                warnings.warn(f"Skipping plugin {name}: {problem}.", FabricPluginWarning, stacklevel=3)
        if skip is not None:
            record.status, record.reason = skip
            continue
        _load(record, entry_point.load, manager, registries)

    for registry in registries.values():
        for entry_name, entries in registry.conflicts.items():
            warnings.warn(registry.conflict_message(entry_name), FabricPluginWarning, stacklevel=3)
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
    return Discovery(registries=registries, records=records)


def _load(
    record: PluginRecord,
    loader: Any,
    manager: pluggy.PluginManager,
    registries: dict[str, Registry],
) -> None:
    """Import one entry point, register it, and run its registration hooks into ``registries``.

    Entries go into scratch registries first, so a plugin whose hook raises half-way
    leaves nothing behind.
    """
    plugin_name = f"{record.distribution}:{record.entry_point}"
    module = None
    try:
        module = loader()
        manager.register(module, name=plugin_name)
        manager.check_pending()
        record.hooks = sorted(
            caller.name for caller in manager.get_hookcallers(module) or [] if caller.name.startswith("fabric_")
        )
        scratch = {kind: Registry(kind) for kind in KINDS}
        for kind, hook_name in hookspecs.REGISTRATION_HOOKS.items():
            scratch[kind]._bind(record.distribution)
            for impl in getattr(manager.hook, hook_name).get_hookimpls():
                if impl.plugin is module:
                    impl.function(*[{"registry": scratch[kind]}[arg] for arg in impl.argnames])
        # Two entry points of one distribution giving the same name would make the merge
        # below raise outside this try, breaking discovery for everyone: fail this one instead.
        for kind, registry in scratch.items():
            for entry in registry:
                if entry.name in registries[kind] and registries[kind].get(entry.name).distribution == (
                    record.distribution
                ):
                    raise ValueError(
                        f"{kind} {entry.name!r} is registered twice by {record.distribution} (by two of its "
                        "entry points); register each name from one entry point only."
                    )
    except Exception as err:
        if module is not None and manager.is_registered(module):
            manager.unregister(module)
        record.status = "failed"
        record.error = err
        record.reason = f"{type(err).__name__}: {err}"
        warnings.warn(
            f"Plugin {record.distribution} (entry point {record.entry_point} = {record.value}) failed to load "
            f"and was skipped: {record.reason}",
            FabricPluginWarning,
            stacklevel=4,
        )
        return
    record.module = module
    for kind, registry in scratch.items():
        for entry in registry:
            registries[kind]._insert(entry)
        if len(registry):
            record.provides[KINDS[kind]] = registry.names()
