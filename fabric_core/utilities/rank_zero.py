"""Running something on global rank zero only."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def _rank_from_environment() -> int:
    for variable in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "LOCAL_RANK"):
        value = os.environ.get(variable)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                continue
    return 0


def rank_zero_only(fn: F) -> F:
    """Decorate ``fn`` so it runs on global rank 0 only (returning ``None`` elsewhere).

    The rank is ``rank_zero_only.rank``: read from the environment at import, and set by
    Fabric once its strategy knows the real global rank.
    """

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if rank_zero_only.rank == 0:  # type: ignore[attr-defined]
            return fn(*args, **kwargs)
        return None

    return wrapped  # type: ignore[return-value]


rank_zero_only.rank = _rank_from_environment()  # type: ignore[attr-defined]
