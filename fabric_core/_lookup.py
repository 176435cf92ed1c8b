"""Turning a name (``strategy="deepspeed"``) into a registry entry, or into one clear error."""

from __future__ import annotations

import fnmatch
from typing import Any

from fabric_core._discovery import Discovery, PluginRecord, discover
from fabric_core._requirements import CORE_DISTRIBUTION, canonical
from fabric_core.errors import PluginNotAvailableError
from fabric_core.registry import KINDS, Entry

__all__ = ["KNOWN_ADDONS", "PluginNotAvailableError", "lookup"]

#: Names that well-known add-ons provide: (kind, name pattern, distribution).
KNOWN_ADDONS: tuple[tuple[str, str, str], ...] = (
    ("strategy", "deepspeed", "fabric-deepspeed"),
    ("strategy", "deepspeed_*", "fabric-deepspeed"),
    ("accelerator", "tpu", "fabric-xla"),
    ("accelerator", "xla", "fabric-xla"),
    ("strategy", "xla*", "fabric-xla"),
    ("strategy", "single_xla", "fabric-xla"),
    ("precision", "*-xla", "fabric-xla"),
    ("logger", "tensorboard", "fabric-tensorboard"),
    ("logger", "mlflow", "fabric-mlflow"),
    ("logger", "wandb", "fabric-wandb"),
)


def _match(table: tuple[tuple[str, str, str], ...], kind: str, name: str) -> str | None:
    for table_kind, pattern, value in table:
        if table_kind == kind and fnmatch.fnmatchcase(name, pattern):
            return value
    return None


def lookup(kind: str, name: str, *, context: str = "") -> Entry:
    """The entry registered as ``name`` (for an alias, its first registered target);
    otherwise raise :class:`~fabric_core.errors.PluginNotAvailableError`.

    :param kind: ``"accelerator"``, ``"strategy"``, ``"precision"``, ``"environment"``,
        ``"logger"`` or ``"callback"``.
    :param context: appended to the first sentence of an error (what chose this name).
    :raises DuplicateNameError: two add-ons registered ``name``; the error names both.
    """
    found = discover()
    registry = found.registry(kind)
    if name in registry or name in registry.conflicts:
        return registry.get(name)  # a conflict raises DuplicateNameError naming both distributions
    if name in registry.aliases:
        targets = registry.alias_targets(name)
        if targets:
            return targets[0]
        wanted = " or ".join(repr(target) for target in registry.aliases[name].targets)
        raise PluginNotAvailableError(
            f"{kind}={name!r}{context} stands for {wanted}, none of which is registered. "
            f"Available {KINDS[kind]}: {registry.describe_available()}.",
            kind=kind,
            name=name,
        )
    raise _not_available(found, kind, name, context)


def _not_available(found: Discovery, kind: str, name: str, context: str) -> PluginNotAvailableError:
    asked = f"{kind}={name!r}{context}"
    registry = found.registry(kind)
    available = f"Available {KINDS[kind]}: {registry.describe_available()}."

    distribution = _match(KNOWN_ADDONS, kind, name)
    if distribution is not None:
        records = found.records_for(distribution)
        if not records:
            return PluginNotAvailableError(
                f"{asked}: {kind} {name!r} is provided by {distribution}, which is not installed: "
                f"pip install {distribution}",
                kind=kind,
                name=name,
                distribution=distribution,
                status="not-installed",
            )
        return _from_records(asked, kind, name, records, available)

    # An unknown name: perhaps a typo, perhaps an add-on that did not load.
    suggestions = tuple(registry.suggest(name))
    hint = f" Did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    unloaded = [r for r in found.records if r.status != "loaded" and canonical(r.distribution) != CORE_DISTRIBUTION]
    if unloaded:
        listing = "; ".join(f"{r.distribution} ({r.status}: {r.reason})" for r in unloaded)
        error = PluginNotAvailableError(
            f"Unknown {asked}.{hint} {available} Installed plugins that were not loaded, one of which may "
            f"provide it: {listing}.",
            kind=kind,
            name=name,
            suggestions=suggestions,
        )
        failed = [r for r in unloaded if r.error is not None]
        if len(failed) == 1:
            error.__cause__ = failed[0].error
        return error
    return PluginNotAvailableError(f"Unknown {asked}.{hint} {available}", kind=kind, name=name, suggestions=suggestions)


def _from_records(
    asked: str, kind: str, name: str, records: list[PluginRecord], available: str
) -> PluginNotAvailableError:
    record = records[0]
    label = f"{record.distribution} {record.version}"
    about: dict[str, Any] = {"kind": kind, "name": name, "distribution": record.distribution, "status": record.status}
    if record.status == "loaded":
        provides = ", ".join(record.provides.get(KINDS[kind], [])) or "none"
        return PluginNotAvailableError(
            f"{asked}: {label} is installed and loaded but does not provide {kind} {name!r} "
            f"(its {KINDS[kind]}: {provides}). Check the name, or upgrade {record.distribution}.",
            **about,
        )
    if record.status in ("failed", "refused"):
        what = "failed to load" if record.status == "failed" else "was refused"
        error = PluginNotAvailableError(
            f"{asked}: {kind} {name!r} is provided by {label}, which is installed but {what} "
            f"({record.reason}). Fix or reinstall it (pip install --force-reinstall {record.distribution}); "
            "the original error is chained below.",
            **about,
        )
        error.__cause__ = record.error
        return error
    return PluginNotAvailableError(
        f"{asked}: {kind} {name!r} is provided by {label}, which is installed but was not loaded: {record.reason}.",
        **about,
    )
