"""fabric-core's own messages, through structlog.

Quiet by default: warnings and errors only, on global rank 0 only. Switches:

* ``FABRIC_LOG_LEVEL=debug|info|warning|error`` sets the level.
* ``FABRIC_LOG_FORMAT=json`` prints JSON lines instead of key=value text.
* ``FABRIC_LOG_ALL_RANKS=1`` prints on every rank, not just rank 0.

Every message carries ``rank`` and ``world_size``. Configuration happens on first use,
not at import; it uses a private structlog configuration so an application's own
structlog setup is left alone.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_context: dict[str, int] = {"rank": 0, "world_size": 1}
_wrapper_class: Any = None


def set_rank(rank: int, world_size: int) -> None:
    """Bind the process's rank and world size to every later message."""
    _context["rank"] = rank
    _context["world_size"] = world_size


def _add_rank(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    event.setdefault("rank", _context["rank"])
    event.setdefault("world_size", _context["world_size"])
    return event


def _rank_zero_filter(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    if _context["rank"] != 0 and os.environ.get("FABRIC_LOG_ALL_RANKS", "") not in ("1", "true"):
        raise structlog.DropEvent
    return event


def _processors() -> list[Any]:
    processors: list[Any] = [
        _rank_zero_filter,
        structlog.processors.add_log_level,
        _add_rank,
        structlog.processors.TimeStamper(fmt="iso"),
    ]
    if os.environ.get("FABRIC_LOG_FORMAT", "").lower() == "json":
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    return processors


def get_logger(name: str = "fabric_core") -> Any:
    """A structlog logger for ``name``, configured from the environment when first created."""
    level = _LEVELS.get(os.environ.get("FABRIC_LOG_LEVEL", "warning").lower(), logging.WARNING)
    return structlog.wrap_logger(
        structlog.PrintLogger(file=sys.stderr),
        processors=_processors(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_name=name,
    )
