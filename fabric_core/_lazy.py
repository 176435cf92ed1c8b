"""Lazy module attributes (PEP 562) behind Lightning Fabric's import paths.

``fabric_core.strategies``, ``fabric_core.plugins`` and the other public namespaces list
their names here instead of importing them, so ``import fabric_core`` stays cheap and a
name costs its import only when a script uses it. A name whose backend lives in an add-on
(DeepSpeed, XLA, TensorBoard, ...) resolves to the add-on's class when the add-on is
installed, and otherwise raises :class:`AddonNotInstalledError`, which says what to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fabric_core.errors import AddonNotInstalledError

__all__ = ["AddonName", "AddonNotInstalledError", "lazy_attributes"]


@dataclass(frozen=True)
class AddonName:
    """Where a Lightning name lives when its backend is an add-on.

    :param target: ``"package.module:Class"`` inside the add-on.
    :param distribution: the add-on's distribution name (``"fabric-deepspeed"``).
    :param backend: what the add-on brings, for the message (``"DeepSpeed ZeRO"``).
    :param released: ``False`` while the add-on is planned but not published.
    """

    target: str
    distribution: str
    backend: str
    released: bool = True

    @property
    def package(self) -> str:
        """The add-on's top-level import package (``"fabric_deepspeed"``)."""
        return self.target.partition(":")[0].split(".")[0]

    def installed(self) -> bool:
        try:
            return importlib.util.find_spec(self.package) is not None
        except (ImportError, ValueError):
            return False

    def missing_message(self, owner: str, name: str) -> str:
        what = f"{owner}.{name} ({self.backend})"
        if self.released:
            return (
                f"{what} is provided by the add-on {self.distribution}, which is not installed. "
                f"Install it with: pip install {self.distribution}"
            )
        return (
            f"{what} is provided by the add-on {self.distribution}, which is planned but not released yet, so "
            f"fabric-core cannot provide it now (pip install {self.distribution} once it is published). See "
            "docs/guide/migrating.md for what to use instead."
        )


def _resolve(target: str) -> Any:
    """Import ``"module:attribute"`` (or a bare ``"module"``) and return it."""
    module_name, _, attribute = target.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in attribute.split(".") if attribute else []:
        value = getattr(value, part)
    return value


def _resolve_addon(owner: str, name: str, addon: AddonName) -> Any:
    try:
        return _resolve(addon.target)
    except ModuleNotFoundError as err:
        if err.name is not None and err.name.split(".")[0] == addon.package:
            raise AddonNotInstalledError(
                addon.missing_message(owner, name), name=name, distribution=addon.distribution
            ) from None
        raise ImportError(
            f"{owner}.{name} comes from the add-on {addon.distribution}, which is installed but failed to import: "
            f"{type(err).__name__}: {err}. Reinstall {addon.distribution} and the packages it needs."
        ) from err


def lazy_attributes(
    owner: str,
    names: Mapping[str, str],
    addons: Mapping[str, AddonName] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of module ``owner``.

    :param owner: the module's ``__name__``.
    :param names: public name -> ``"module:attribute"`` (or ``"module"`` for a submodule).
    :param addons: public name -> the add-on that provides it.
    """
    addon_names = dict(addons or {})

    def __getattr__(name: str) -> Any:
        target = names.get(name)
        if target is not None:
            value = _resolve(target)
        elif name in addon_names:
            value = _resolve_addon(owner, name, addon_names[name])
        else:
            raise AttributeError(f"module {owner!r} has no attribute {name!r}")
        # Cache on the module: the next access is a plain attribute lookup.
        setattr(sys.modules[owner], name, value)
        return value

    def __dir__() -> list[str]:
        module = sys.modules[owner]
        present = [name for name, addon in addon_names.items() if addon.installed()]
        return sorted({*vars(module), *names, *present})

    return __getattr__, __dir__
