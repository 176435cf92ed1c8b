"""Named registries that registration hooks fill: one per kind of component.

A registration hook (``fabric_register_strategies(registry)``, ...) gets a
:class:`Registry` and calls :meth:`Registry.add` for each name, and :meth:`Registry.add_alias`
for a name that stands for others (``accelerator="gpu"``: the first available of
``"cuda"`` and ``"mps"``). Discovery gives each plugin a registry of its own
(``Registry(kind, distribution=...)``), then merges it into the process-wide one with
:meth:`Registry.merge`, which records a name registered by two distributions as a conflict.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fabric_core.errors import DuplicateNameError

__all__ = ["KINDS", "Alias", "DuplicateNameError", "Entry", "Registry"]

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
    :param accelerators: for a strategy, the accelerators it runs on (empty: any).
    :param fallback: for a strategy limited to some ``accelerators``, the name used instead
        (with a warning) on any other accelerator, as Lightning runs ``ddp`` for ``dp`` on a CPU.
    :param single_process: for a strategy, one process drives all the devices of a node
        (``dp``, DataParallel), so ``fabric run`` starts one process per node, not one per device.
    """

    name: str
    kind: str
    factory: Any
    init_params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    distribution: str = "unknown"
    priority: int | None = None
    accelerators: tuple[str, ...] = ()
    fallback: str | None = None
    single_process: bool = False

    def fallback_on(self, accelerator: str) -> str | None:
        """The name to use instead of this strategy on ``accelerator``; ``None`` when it runs there."""
        if self.fallback is None or accelerator in self.accelerators:
            return None
        return self.fallback

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


@dataclass(frozen=True)
class Alias:
    """A name that stands for other names of the same registry, tried in order.

    ``accelerator="gpu"`` is an alias of ``("cuda", "mps")``: the first of them that is
    registered and available on this machine is used.

    :param name: what users pass.
    :param kind: one of :data:`KINDS`.
    :param targets: the names it stands for, in order of preference.
    :param description: one line shown by ``fabric plugins``.
    :param distribution: the distribution that registered it.
    """

    name: str
    kind: str
    targets: tuple[str, ...]
    description: str = ""
    distribution: str = "unknown"


class Registry:
    """Names of one kind of component, filled by registration hooks.

    A registration hook receives a registry and calls :meth:`add`. Lookups are by name;
    the same name from two distributions is recorded as a conflict and raises a
    :class:`~fabric_core.errors.DuplicateNameError` naming both when it is selected.

    :param kind: one of :data:`KINDS`.
    :param distribution: recorded as :attr:`Entry.distribution` of every name :meth:`add`
        registers (discovery passes the plugin's distribution).
    """

    def __init__(self, kind: str, *, distribution: str = "unknown") -> None:
        if kind not in KINDS:
            raise ValueError(f"Unknown registry kind {kind!r}; expected one of {sorted(KINDS)}.")
        self.kind = kind
        self.distribution = distribution
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, Alias] = {}
        self._conflicts: dict[str, list[Entry]] = {}

    def add(
        self,
        name: str,
        factory: Any,
        *,
        init_params: Mapping[str, Any] | None = None,
        description: str = "",
        priority: int | None = None,
        accelerators: Sequence[str] = (),
        fallback: str | None = None,
        single_process: bool = False,
    ) -> None:
        """Register ``name``.

        :param factory: a class or callable, or a lazily imported ``"module:Class"`` string.
        :param init_params: keyword arguments the factory gets for this name.
        :param description: a one-line description for listings.
        :param priority: position in automatic selection (higher first); ``None`` for none.
        :param accelerators: for a strategy, the accelerators it runs on (default: any).
        :param fallback: for a strategy with ``accelerators``, the name to use instead on others.
        :param single_process: for a strategy, one process drives all the devices of a node.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"A {self.kind} name must be a non-empty string, got {name!r}.")
        if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
            raise TypeError(
                f"{self.kind} {name!r}: the factory must be a class, a callable or a 'module:Class' "
                f"string, got {factory!r}."
            )
        if fallback is not None and not accelerators:
            raise ValueError(
                f"{self.kind} {name!r}: fallback={fallback!r} needs accelerators=(...), the accelerators "
                f"{name!r} runs on; on the others {fallback!r} is used instead."
            )
        entry = Entry(
            name=name,
            kind=self.kind,
            factory=factory,
            init_params=dict(init_params or {}),
            description=description,
            distribution=self.distribution,
            priority=priority,
            accelerators=tuple(accelerators),
            fallback=fallback,
            single_process=single_process,
        )
        self._insert(entry)

    def add_alias(self, name: str, targets: Sequence[str], *, description: str = "") -> None:
        """Register ``name`` as standing for ``targets``, tried in order (the first registered
        and, for an accelerator, available one is used)."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"A {self.kind} alias must be a non-empty string, got {name!r}.")
        if isinstance(targets, str) or not targets:
            raise TypeError(f"{self.kind} alias {name!r}: targets must be a non-empty list of names, got {targets!r}.")
        self._insert_alias(Alias(name, self.kind, tuple(targets), description, self.distribution))

    def merge(self, other: Registry) -> None:
        """Add every entry and alias of ``other`` (the registry one plugin filled), keeping
        their distribution; a name another distribution registered already becomes a conflict."""
        if other.kind != self.kind:
            raise ValueError(f"Cannot merge a {other.kind} registry into a {self.kind} registry.")
        for entry in other:
            self._insert(entry)
        for alias in other.aliases.values():
            self._insert_alias(alias)

    def _insert(self, entry: Entry) -> None:
        name = entry.name
        if name in self._aliases:
            raise ValueError(
                f"{self.kind} {name!r} from {entry.distribution} is already an alias registered by "
                f"{self._aliases[name].distribution}; choose another name."
            )
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

    def _insert_alias(self, alias: Alias) -> None:
        owner = self._entries.get(alias.name) or self._aliases.get(alias.name)
        if owner is not None or alias.name in self._conflicts:
            by = owner.distribution if owner is not None else "two distributions"
            raise ValueError(
                f"{self.kind} alias {alias.name!r} from {alias.distribution}: the name is already registered by "
                f"{by}; choose another name."
            )
        self._aliases[alias.name] = alias

    def get(self, name: str) -> Entry:
        """Return the entry for ``name``; :class:`KeyError` when absent, a conflict error when doubled."""
        if name in self._conflicts:
            raise DuplicateNameError(
                self.conflict_message(name),
                kind=self.kind,
                name=name,
                distributions=tuple(entry.distribution for entry in self._conflicts[name]),
            )
        return self._entries[name]

    def conflict_message(self, name: str) -> str:
        """The message for a name two distributions registered."""
        dists = " and ".join(entry.distribution for entry in self._conflicts[name])
        return (
            f"{self.kind} {name!r} is registered by both {dists}, so fabric-core cannot tell which one "
            "you mean. Uninstall one of them, or block one with FABRIC_BLOCK_PLUGINS=<distribution>."
        )

    @property
    def conflicts(self) -> dict[str, list[Entry]]:
        """Names registered by more than one distribution, with every registration."""
        return dict(self._conflicts)

    @property
    def aliases(self) -> dict[str, Alias]:
        """The registered aliases by name."""
        return dict(self._aliases)

    def alias_targets(self, name: str) -> list[Entry]:
        """The registered entries that alias ``name`` stands for, in its order."""
        return [self._entries[target] for target in self._aliases[name].targets if target in self._entries]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """The registered names (aliases not included), sorted."""
        return sorted(self._entries)

    def by_priority(self) -> list[Entry]:
        """Entries taking part in automatic selection, highest priority first."""
        ranked = [entry for entry in self._entries.values() if entry.priority is not None]
        return sorted(ranked, key=lambda entry: -(entry.priority or 0))

    def suggest(self, name: str) -> list[str]:
        """Registered names (and aliases) close to ``name``, best first."""
        return difflib.get_close_matches(name, [*self._entries, *self._aliases], n=3, cutoff=0.6)

    def describe_available(self) -> str:
        """``'a' (dist), 'b' (dist)`` for error messages."""
        return ", ".join(f"{e.name!r} ({e.distribution})" for e in sorted(self, key=lambda e: e.name)) or "none"
