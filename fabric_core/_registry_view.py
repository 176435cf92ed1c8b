"""``STRATEGY_REGISTRY`` and ``ACCELERATOR_REGISTRY``: Lightning's registry names, read-only.

Lightning keeps a global dict that classes fill at import time. fabric-core's registries
are filled by plugin discovery (the ``fabric_register_*`` hooks), so these objects are
views of the discovered registry: reading one runs discovery on first use (never at
``import fabric_core``), and adding a name goes through a registration hook instead of
``register()``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from fabric_core.registry import Registry

__all__ = ["ACCELERATOR_REGISTRY", "STRATEGY_REGISTRY", "RegistryView"]


class RegistryView(Mapping[str, dict[str, Any]]):
    """A mapping of registered names to Lightning-shaped records.

    ``view[name]`` is ``{<kind>: the class, "init_params": ..., "description": ...,
    "distribution": ...}``; :meth:`get` builds an instance, as Lightning's registry does.
    """

    def __init__(self, kind: str, hook: str) -> None:
        self._kind = kind
        self._hook = hook

    def _registry(self) -> Registry:
        from fabric_core._connector import lookup_registry

        return lookup_registry(self._kind)

    def __getitem__(self, name: str) -> dict[str, Any]:
        entry = self._registry().get(name)
        return {
            self._kind: entry.load(),
            "init_params": dict(entry.init_params),
            "description": entry.description,
            "distribution": entry.distribution,
        }

    def __iter__(self) -> Iterator[str]:
        return iter(self._registry().names())

    def __len__(self) -> int:
        return len(self._registry())

    def __contains__(self, name: object) -> bool:
        return name in self._registry()

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """An instance of ``name`` built with its registered arguments, or ``default``."""
        if name not in self:
            return default
        return self._registry().get(name).create()

    def available_strategies(self) -> list[str]:
        """The registered names (Lightning's spelling for the strategy registry)."""
        return list(self)

    def available_accelerators(self) -> list[str]:
        """The registered names (Lightning's spelling for the accelerator registry)."""
        return list(self)

    def register(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Refused: names are registered by plugins, not at runtime."""
        raise NotImplementedError(
            f"{self._kind.upper()}_REGISTRY.register({name!r}, ...): fabric-core registers {self._kind} names "
            f"through the {self._hook} hook of a plugin, not at runtime. Pass the instance directly "
            f"(Fabric({self._kind}=My{self._kind.capitalize()}(...))), or see docs/plugins/writing.md."
        )

    def remove(self, name: str) -> None:
        """Refused: block a plugin's names with ``FABRIC_BLOCK_PLUGINS`` instead."""
        raise NotImplementedError(
            f"{self._kind.upper()}_REGISTRY.remove({name!r}): the registry is built by plugin discovery; block the "
            "distribution that registers it with FABRIC_BLOCK_PLUGINS=<distribution> instead."
        )

    def __repr__(self) -> str:
        return f"<{self._kind} registry view (names registered by plugins)>"


STRATEGY_REGISTRY = RegistryView("strategy", "fabric_register_strategies")
ACCELERATOR_REGISTRY = RegistryView("accelerator", "fabric_register_accelerators")
