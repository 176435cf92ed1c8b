"""Reading a scheduler's environment variables with errors that say what is wrong.

The errors subclass the exception types Lightning's environments raise for the same
problems (``KeyError`` for a missing variable, ``ValueError`` for a malformed one) as well
as ``RuntimeError``, so code written for either catches them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = [
    "LAUNCHER_VARIABLES",
    "EnvironmentVariableError",
    "MissingEnvironmentVariableError",
    "check_rank",
    "first_set",
    "is_launcher_variable",
    "read_int",
    "read_port",
]

#: what launchers (torchrun, SLURM, LSF, MPI, Kubeflow, Fabric's own) set to place a process in a run
LAUNCHER_VARIABLES = frozenset(
    {"LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "GROUP_RANK"}
)
_LAUNCHER_PREFIXES = ("TORCHELASTIC_", "SLURM_", "LSB_", "OMPI_", "PMI_", "KUBERNETES_")


def is_launcher_variable(name: str) -> bool:
    """Whether ``name`` is one a launcher sets (:data:`LAUNCHER_VARIABLES`, ``SLURM_*``, ``TORCHELASTIC_*``, ...)."""
    return name in LAUNCHER_VARIABLES or name.startswith(_LAUNCHER_PREFIXES)


class EnvironmentVariableError(RuntimeError, ValueError):
    """A variable a cluster environment reads holds a value it cannot use."""


class MissingEnvironmentVariableError(EnvironmentVariableError, KeyError):
    """A variable a cluster environment needs is not set."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def first_set(names: Sequence[str]) -> tuple[str, str] | None:
    """The first of ``names`` that is set, as ``(name, value)``; ``None`` when none is."""
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip() != "":
            return name, value.strip()
    return None


def read_int(
    names: str | Sequence[str],
    *,
    owner: str,
    hint: str,
    default: int | None = None,
    minimum: int | None = 0,
) -> int:
    """The integer in the first set variable of ``names``, else ``default``.

    :param owner: who asks (``"SLURMEnvironment"``), for the message.
    :param hint: what sets the variable, for the message.
    :param minimum: the smallest valid value (ranks and sizes are never negative).
    :raises MissingEnvironmentVariableError: when none is set and there is no default.
    :raises EnvironmentVariableError: when the value is not an integer, or below ``minimum``.
    """
    candidates = [names] if isinstance(names, str) else list(names)
    found = first_set(candidates)
    if found is None:
        if default is not None:
            return default
        listed = " or ".join(candidates)
        raise MissingEnvironmentVariableError(
            f"{owner} needs the environment variable {listed}, which is not set. {hint}"
        )
    name, value = found
    try:
        number = int(value)
    except ValueError:
        raise EnvironmentVariableError(f"{owner}: {name}={value!r} is not an integer. {hint}") from None
    if minimum is not None and number < minimum:
        raise EnvironmentVariableError(f"{owner}: {name}={value!r} is below {minimum}. {hint}")
    return number


def read_port(name: str, *, owner: str) -> int:
    """The TCP port in variable ``name`` (1 to 65535).

    :raises EnvironmentVariableError: when it is not a port number.
    """
    hint = f"Set {name} to a free port number (1-65535), or unset it."
    port = read_int(name, owner=owner, hint=hint, minimum=1)
    if port > 65535:
        raise EnvironmentVariableError(f"{owner}: {name}={os.environ[name]!r} is not a port number. {hint}")
    return port


def check_rank(rank_name: str, size_name: str, *, owner: str, hint: str) -> None:
    """When both are set, the rank in ``rank_name`` must be below the size in ``size_name``.

    A rank outside the world would wait forever at the rendezvous; this says why instead.

    :raises EnvironmentVariableError: naming both variables and their values.
    """
    if first_set([rank_name]) is None or first_set([size_name]) is None:
        return
    rank = read_int(rank_name, owner=owner, hint=hint)
    size = read_int(size_name, owner=owner, hint=hint, minimum=1)
    if rank >= size:
        raise EnvironmentVariableError(
            f"{owner}: {rank_name}={rank} is not below {size_name}={size}: ranks run from 0 to {size - 1}, so this "
            f"process would wait forever for the others. {hint}"
        )
