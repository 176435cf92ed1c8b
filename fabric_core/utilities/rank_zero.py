"""Running something on global rank zero only: the decorator, and warnings and log
messages that appear once per job instead of once per process."""

from __future__ import annotations

import functools
import logging
import os
import warnings
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


class LightningDeprecationWarning(DeprecationWarning):
    """Deprecations of fabric-core's (and Lightning's) API; shown by default, unlike ``DeprecationWarning``."""


warnings.simplefilter("default", category=LightningDeprecationWarning)


def rank_prefixed_message(message: str, rank: int | None) -> str:
    """``message`` prefixed with ``[rank: N]`` (unchanged when the rank is unknown)."""
    return f"[rank: {rank}] {message}" if rank is not None else message


@rank_zero_only
def rank_zero_warn(message: str | Warning, stacklevel: int = 4, **kwargs: Any) -> None:
    """``warnings.warn`` on global rank 0 only."""
    warnings.warn(message, stacklevel=stacklevel, **kwargs)


@rank_zero_only
def rank_zero_deprecation(message: str | Warning, stacklevel: int = 5, **kwargs: Any) -> None:
    """A :class:`LightningDeprecationWarning` on global rank 0 only."""
    kwargs.setdefault("category", LightningDeprecationWarning)
    warnings.warn(message, stacklevel=stacklevel, **kwargs)


@rank_zero_only
def rank_zero_info(*args: Any, stacklevel: int = 4, **kwargs: Any) -> None:
    """``logging.info`` on the ``fabric_core`` logger, on global rank 0 only."""
    logging.getLogger("fabric_core").info(*args, stacklevel=stacklevel, **kwargs)


@rank_zero_only
def rank_zero_debug(*args: Any, stacklevel: int = 4, **kwargs: Any) -> None:
    """``logging.debug`` on global rank 0 only."""
    logging.getLogger("fabric_core").debug(*args, stacklevel=stacklevel, **kwargs)
