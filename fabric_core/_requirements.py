"""Whether an add-on's ``fabric-core`` requirement is met by the running core.

Plain requirement lines (``fabric-core>=0.1,<1``) are read here; packaging's full parser
(whose specifier regex takes ~100 ms to compile, most of a first ``Fabric()``) is only used
for lines this does not understand: markers, wildcards, ``~=``.
"""

from __future__ import annotations

import importlib.metadata as metadata
import operator
import re
from typing import Any

CORE_DISTRIBUTION = "fabric-core"


def canonical(name: str) -> str:
    """A distribution or entry-point name in one spelling (``Fabric_X.y`` -> ``fabric-x-y``)."""
    return name.lower().replace("_", "-").replace(".", "-")


def core_version() -> str:
    from fabric_core import __version__

    return __version__


def incompatibility(dist: metadata.Distribution) -> str | None:
    """A message when ``dist`` declares a fabric-core requirement this core does not meet."""
    from packaging.version import Version

    core = Version(core_version())
    for line in dist.requires or []:
        specifier = core_specifier(line)
        if specifier is None or satisfies(core, specifier):
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


def core_specifier(line: str) -> str | None:
    """The version specifier (``">=0.1,<1"``) of a requirement line on fabric-core; ``None`` for other lines."""
    match = _REQUIREMENT.match(line)
    if match is not None and canonical(match.group(1)) != CORE_DISTRIBUTION:
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
    if canonical(requirement.name) != CORE_DISTRIBUTION:
        return None
    if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
        return None
    return str(requirement.specifier) or None


def satisfies(version: Any, specifier: str) -> bool:
    """Whether ``version`` meets ``specifier`` (pre-releases included, as for the core's own version)."""
    from packaging.version import Version

    clauses = [_CLAUSE.match(clause) for clause in specifier.split(",")]
    if all(clauses):
        return all(_COMPARE[clause.group(1)](version, Version(clause.group(2))) for clause in clauses if clause)
    from packaging.specifiers import SpecifierSet  # wildcards, ~=, ===: the full rules

    return SpecifierSet(specifier).contains(version, prereleases=True)
