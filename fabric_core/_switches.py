"""The environment variables that steer discovery, read and checked in one place.

* ``FABRIC_DISABLE_PLUGIN_AUTOLOAD=1``: load only fabric-core's own built-ins.
* ``FABRIC_PLUGINS=dist-a,dist-b``: load only these add-ons (distribution or entry-point names).
* ``FABRIC_BLOCK_PLUGINS=name,...``: skip these add-ons.

A value that does nothing is never silent: an unknown yes/no word, an allow- or block-list
while autoload is off, and a listed name that matches no installed add-on each give a
:class:`~fabric_core.errors.FabricPluginWarning` saying what was ignored and what to set.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from fabric_core._requirements import CORE_DISTRIBUTION, canonical
from fabric_core.errors import FabricPluginWarning

AUTOLOAD = "FABRIC_DISABLE_PLUGIN_AUTOLOAD"
ALLOW = "FABRIC_PLUGINS"
BLOCK = "FABRIC_BLOCK_PLUGINS"
#: The environment variables that steer discovery.
SWITCHES: tuple[str, ...] = (AUTOLOAD, ALLOW, BLOCK)

_YES = {"1", "true", "yes", "on"}
_NO = {"", "0", "false", "no", "off"}


def _names(variable: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in os.environ.get(variable, "").split(",") if item.strip())


def _warn(message: str, switch: str) -> None:
    warnings.warn(FabricPluginWarning(message, switch=switch), stacklevel=4)


@dataclass(frozen=True)
class Switches:
    """The switches' values as discovery uses them."""

    autoload: bool = True
    allowed: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()

    @classmethod
    def read(cls) -> Switches:
        """Read the variables, warning about a value that does nothing."""
        raw = os.environ.get(AUTOLOAD, "").strip()
        if raw.lower() not in _YES | _NO:
            _warn(
                f"{AUTOLOAD}={raw!r} is neither a yes (1, true, yes, on) nor a no (0, false, no, off), so it is "
                f"ignored and add-ons are loaded. Set {AUTOLOAD}=1 to load only fabric-core's built-ins, or unset it.",
                AUTOLOAD,
            )
        switches = cls(autoload=raw.lower() not in _YES, allowed=_names(ALLOW), blocked=_names(BLOCK))
        if not switches.autoload:
            for variable, names in ((ALLOW, switches.allowed), (BLOCK, switches.blocked)):
                if names:
                    _warn(
                        f"{variable}={','.join(names)} has no effect: {AUTOLOAD}={raw} loads no add-on at all. "
                        f"Unset {AUTOLOAD} for {variable} to choose add-ons, or unset {variable}.",
                        variable,
                    )
        return switches

    def skip_reason(self, distribution: str, entry_name: str) -> tuple[str, str] | None:
        """Why these switches skip an add-on's entry point, as ``(status, reason)``; ``None`` to load it."""
        names = {canonical(distribution), canonical(entry_name)}
        if not self.autoload:
            return "disabled", f"{AUTOLOAD}=1 is set; unset it to load add-ons"
        if self.allowed and not names & {canonical(name) for name in self.allowed}:
            return "not-allowed", f"not listed in {ALLOW}={','.join(self.allowed)}; add {distribution} to it"
        if names & {canonical(name) for name in self.blocked}:
            return "blocked", f"listed in {BLOCK}={','.join(self.blocked)}; remove it from there to load it"
        return None

    def check_names(self, installed: Iterable[tuple[str, str]]) -> None:
        """Warn about names in the allow- and block-lists that match no installed add-on.

        :param installed: ``(distribution, entry-point name)`` of every entry point found.
        """
        if not self.autoload:
            return  # already warned: the lists do nothing
        pairs = list(installed)
        addons = [(dist, entry) for dist, entry in pairs if canonical(dist) != CORE_DISTRIBUTION]
        known = {canonical(name) for pair in addons for name in pair}
        core = {canonical(CORE_DISTRIBUTION)} | {canonical(e) for d, e in pairs if canonical(d) == CORE_DISTRIBUTION}
        spelled = sorted({name for pair in addons for name in pair})
        listing = ", ".join(f"{dist} ({entry})" for dist, entry in sorted(set(addons))) or "none"
        for variable, names in ((ALLOW, self.allowed), (BLOCK, self.blocked)):
            for name in names:
                if canonical(name) in known:
                    continue
                if canonical(name) in core or canonical(name) == "builtins":
                    if variable == BLOCK:
                        _warn(
                            f"{BLOCK} lists {name!r}, but fabric-core's own built-ins are always loaded and cannot "
                            f"be blocked. Remove {name!r} from {BLOCK}.",
                            BLOCK,
                        )
                    continue
                close = difflib.get_close_matches(name, spelled, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                _warn(
                    f"{variable} lists {name!r}, which matches no installed add-on, so it does nothing.{hint} "
                    f"Installed add-ons (distribution (entry point)): {listing}.",
                    variable,
                )
