"""Named registries that registration hooks fill: one per kind of component."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The kinds of component a registry can hold, with their plural for messages.
KINDS: dict[str, str] = {
    "accelerator": "accelerators",
    "strategy": "strategies",
    "precision": "precisions",
    "environment": "environments",
    "logger": "loggers",
    "callback": "callbacks",
}


@dataclass(frozen=True)
class Entry:
    """One registered name.

    :param name: what users pass (``strategy="deepspeed_stage_3"``).
    :param kind: one of :data:`KINDS`.
    :param factory: a class or callable, or a ``"module:attribute"`` string that is
        imported only when this entry is selected.
    :param init_params: keyword arguments given to the factory (so one class can serve
        several names).
    :param description: one line shown by ``fabric plugins``.
    :param distribution: the distribution that registered it (``fabric-core``, ...).
    :param priority: order in automatic choices (``accelerator="auto"``, environment
        detection); higher goes first. ``None`` keeps the entry out of automatic choices.
    """

    name: str
    kind: str
    factory: Any
    init_params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    distribution: str = "unknown"
    priority: int | None = None

    def load(self) -> Any:
        """Return the factory, importing it first when it was registered as a string."""
        if not isinstance(self.factory, str):
            return self.factory
        module_name, _, attribute = self.factory.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
            for part in attribute.split(".") if attribute else []:
                target = getattr(target, part)
        except Exception as err:
            raise ImportError(
                f"{self.kind} {self.name!r} from {self.distribution} could not be loaded: importing "
                f"{self.factory!r} failed with {type(err).__name__}: {err}. Reinstall {self.distribution} "
                "and the packages it needs."
            ) from err
        return target

    def create(self, **overrides: Any) -> Any:
        """Build an instance: ``factory(**init_params, **overrides)``."""
        return self.load()(**{**self.init_params, **overrides})


class DuplicateNameError(ValueError):
    """Two distributions registered the same name for the same kind."""


class Registry:
    """Names of one kind of component, filled by registration hooks.

    A registration hook receives a registry and calls :meth:`add`. Lookups are by name;
    the same name from two distributions is recorded as a conflict and raises a
    :class:`DuplicateNameError` naming both when it is selected.
    """

    def __init__(self, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"Unknown registry kind {kind!r}; expected one of {sorted(KINDS)}.")
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._conflicts: dict[str, list[Entry]] = {}
        self._current_distribution = "unknown"

    def add(
        self,
        name: str,
        factory: Any,
        *,
        init_params: Mapping[str, Any] | None = None,
        description: str = "",
        priority: int | None = None,
    ) -> None:
        """Register ``name``.

        :param factory: a class or callable, or a lazily imported ``"module:Class"`` string.
        :param init_params: keyword arguments the factory gets for this name.
        :param description: a one-line description for listings.
        :param priority: position in automatic selection (higher first); ``None`` for none.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"A {self.kind} name must be a non-empty string, got {name!r}.")
        if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
            raise TypeError(
                f"{self.kind} {name!r}: the factory must be a class, a callable or a 'module:Class' "
                f"string, got {factory!r}."
            )
        entry = Entry(
            name=name,
            kind=self.kind,
            factory=factory,
            init_params=dict(init_params or {}),
            description=description,
            distribution=self._current_distribution,
            priority=priority,
        )
        self._insert(entry)

    def _insert(self, entry: Entry) -> None:
        name = entry.name
        if name in self._conflicts:
            self._conflicts[name].append(entry)
            return
        existing = self._entries.get(name)
        if existing is not None:
            if existing.distribution == entry.distribution:
                raise ValueError(f"{self.kind} {name!r} is registered twice by {entry.distribution}.")
            self._conflicts[name] = [self._entries.pop(name), entry]
            return
        self._entries[name] = entry

    def get(self, name: str) -> Entry:
        """Return the entry for ``name``; :class:`KeyError` when absent, a conflict error when doubled."""
        if name in self._conflicts:
            raise DuplicateNameError(self.conflict_message(name))
        return self._entries[name]

    def conflict_message(self, name: str) -> str:
        dists = " and ".join(entry.distribution for entry in self._conflicts[name])
        return (
            f"{self.kind} {name!r} is registered by both {dists}, so fabric-core cannot tell which one "
            "you mean. Uninstall one of them, or block one with FABRIC_BLOCK_PLUGINS=<distribution>."
        )

    @property
    def conflicts(self) -> dict[str, list[Entry]]:
        return dict(self._conflicts)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def by_priority(self) -> list[Entry]:
        """Entries taking part in automatic selection, highest priority first."""
        ranked = [entry for entry in self._entries.values() if entry.priority is not None]
        return sorted(ranked, key=lambda entry: -(entry.priority or 0))

    def suggest(self, name: str) -> list[str]:
        """Registered names close to ``name``, best first."""
        return difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.6)

    def describe_available(self) -> str:
        """``'a' (dist), 'b' (dist)`` for error messages."""
        return ", ".join(f"{e.name!r} ({e.distribution})" for e in sorted(self, key=lambda e: e.name)) or "none"

    def _bind(self, distribution: str) -> None:
        # Discovery sets this before calling a plugin's registration hook, so that each
        # entry records the distribution that added it without plugins passing it.
        self._current_distribution = distribution
