"""Reading a scheduler's environment variables with errors that say what is missing."""

from __future__ import annotations

import os
from collections.abc import Sequence


def first_set(names: Sequence[str]) -> tuple[str, str] | None:
    """The first of ``names`` that is set, as ``(name, value)``; ``None`` when none is."""
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip() != "":
            return name, value.strip()
    return None


def read_int(names: str | Sequence[str], *, owner: str, hint: str, default: int | None = None) -> int:
    """The integer in the first set variable of ``names``, else ``default``.

    :param owner: who asks (``"SLURMEnvironment"``), for the message.
    :param hint: what sets the variable, for the message.
    :raises RuntimeError: when none is set and there is no default, or the value is not an integer.
    """
    candidates = [names] if isinstance(names, str) else list(names)
    found = first_set(candidates)
    if found is None:
        if default is not None:
            return default
        listed = " or ".join(candidates)
        raise RuntimeError(f"{owner} needs the environment variable {listed}, which is not set. {hint}")
    name, value = found
    try:
        return int(value)
    except ValueError:
        raise RuntimeError(f"{owner}: {name}={value!r} is not an integer. {hint}") from None
