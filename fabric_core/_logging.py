"""fabric-core's own messages, through structlog.

Quiet by default: warnings and errors only, on global rank 0 only. Switches, read once,
when the library first logs something (not at import):

* ``FABRIC_LOG_LEVEL=debug|info|warning|error|critical`` sets the level (default ``warning``).
* ``FABRIC_LOG_FORMAT=json`` prints JSON lines instead of ``key=value`` text.
* ``FABRIC_LOG_ALL_RANKS=1`` prints on every rank, not just rank 0.

Every message carries ``rank`` and ``world_size`` (from the environment until Fabric knows
the real values and calls :func:`set_rank`), and, once a Fabric has set up this process,
``step``: the optimizer steps it has taken. Messages go to whatever ``sys.stderr`` is at
the moment of writing, so redirections made after import are honoured.

The loggers here are built from a private processor chain and wrapper class; structlog's
global configuration (``structlog.configure``) is neither read for processors nor changed,
so an application's own structlog setup is left alone and does not reformat these messages.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from fabric_core.utilities.rank_zero import _rank_from_environment

__all__ = ["FabricLogger", "get_logger", "reset", "set_rank"]

_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class _Settings:
    level: int
    json: bool
    all_ranks: bool
    wrapper_class: type[Any]
    processors: tuple[Any, ...]
    problems: tuple[str, ...]


_lock = threading.RLock()
_settings: _Settings | None = None
_generation = 0
_context: dict[str, int | None] = {"rank": None, "world_size": None}
#: what counts the training steps (the last Fabric set up in this process), read when a message is made
_step_source: dict[str, Any] = {"fabric": None}


def set_step_source(source: Any) -> None:
    """Bind the optimizer steps taken so far to every later message (``source.steps``: Fabric's hook facade)."""
    _step_source["fabric"] = source


def set_rank(rank: int, world_size: int) -> None:
    """Bind the process's rank and world size to every later message."""
    _context["rank"] = rank
    _context["world_size"] = world_size


def reset() -> None:
    """Forget the configuration (and the rank), so the next message reads the environment again."""
    global _settings, _generation
    with _lock:
        _settings = None
        _generation += 1
        _context["rank"] = None
        _context["world_size"] = None
        _step_source["fabric"] = None


def _rank() -> int:
    rank = _context["rank"]
    return _rank_from_environment() if rank is None else rank


def _world_size() -> int:
    world_size = _context["world_size"]
    if world_size is not None:
        return world_size
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


class _StderrPrinter:
    """Writes rendered lines to the current ``sys.stderr``, looked up at every write."""

    _write_lock = threading.Lock()

    def msg(self, message: str) -> None:
        stream = sys.stderr
        if stream is None:  # pythonw, or a closed interpreter
            return
        try:
            with self._write_lock:
                stream.write(message + "\n")
                stream.flush()
        except (OSError, ValueError):  # stderr closed (at interpreter exit): drop the message
            pass

    log = debug = info = warn = warning = error = err = critical = exception = fatal = failure = msg


def _add_rank(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    event.setdefault("rank", _rank())
    event.setdefault("world_size", _world_size())
    source = _step_source["fabric"]
    if source is not None:
        event.setdefault("step", source.steps)
    return event


def _drop_off_rank_zero(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    if _rank() != 0:
        raise structlog.DropEvent
    return event


def _read_settings() -> _Settings:
    problems: list[str] = []
    level_name = os.environ.get("FABRIC_LOG_LEVEL", "").strip().lower() or "warning"
    level = _LEVELS.get(level_name)
    if level is None:
        problems.append(
            f"FABRIC_LOG_LEVEL={level_name!r} is not a level; using 'warning'. "
            f"Expected one of {sorted(set(_LEVELS) - {'warn'})}."
        )
        level = logging.WARNING
    log_format = os.environ.get("FABRIC_LOG_FORMAT", "").strip().lower()
    if log_format not in ("", "text", "console", "json"):
        problems.append(f"FABRIC_LOG_FORMAT={log_format!r} is not a format; using text. Expected 'text' or 'json'.")
    json_lines = log_format == "json"
    all_ranks = os.environ.get("FABRIC_LOG_ALL_RANKS", "").strip().lower() in _TRUE
    processors: list[Any] = [] if all_ranks else [_drop_off_rank_zero]
    processors += [
        structlog.processors.add_log_level,
        _add_rank,
        structlog.processors.TimeStamper(fmt="iso"),
    ]
    if json_lines:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    return _Settings(
        level=level,
        json=json_lines,
        all_ranks=all_ranks,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        processors=tuple(processors),
        problems=tuple(problems),
    )


def _configure() -> tuple[_Settings, int]:
    """The settings, read from the environment on first use; and their generation."""
    global _settings
    with _lock:
        fresh = _settings is None
        if _settings is None:
            _settings = _read_settings()
        settings, generation = _settings, _generation
    if fresh:
        for problem in settings.problems:
            _bind(settings, "fabric_core._logging", {}).warning(problem)
    return settings, generation


def _bind(settings: _Settings, name: str, context: Mapping[str, Any]) -> Any:
    context = {"logger": name, **context}
    return settings.wrapper_class(_StderrPrinter(), processors=list(settings.processors), context=context)


class FabricLogger:
    """A structlog logger that configures itself when it first logs.

    Created at import time by modules of the library (``_log = get_logger(__name__)``)
    without reading the environment; the first message builds the real structlog logger.
    """

    __slots__ = ("_bound", "_context", "_generation", "_name")

    def __init__(self, name: str, context: Mapping[str, Any] | None = None) -> None:
        self._name = name
        self._context: dict[str, Any] = dict(context or {})
        self._bound: Any = None
        self._generation = -1

    @property
    def name(self) -> str:
        return self._name

    def _logger(self) -> Any:
        if self._bound is None or self._generation != _generation:
            settings, generation = _configure()
            self._bound = _bind(settings, self._name, self._context)
            self._generation = generation
        return self._bound

    def bind(self, **values: Any) -> FabricLogger:
        """A logger that adds ``values`` to every message."""
        return FabricLogger(self._name, {**self._context, **values})

    def is_enabled_for(self, level: int) -> bool:
        """Whether a message of ``level`` (``logging.INFO``, ...) would be printed on this rank."""
        settings, _ = _configure()
        return level >= settings.level and (_rank() == 0 or settings.all_ranks)

    def debug(self, event: str, *args: Any, **values: Any) -> Any:
        return self._logger().debug(event, *args, **values)

    def info(self, event: str, *args: Any, **values: Any) -> Any:
        return self._logger().info(event, *args, **values)

    def warning(self, event: str, *args: Any, **values: Any) -> Any:
        return self._logger().warning(event, *args, **values)

    warn = warning

    def error(self, event: str, *args: Any, **values: Any) -> Any:
        return self._logger().error(event, *args, **values)

    def critical(self, event: str, *args: Any, **values: Any) -> Any:
        return self._logger().critical(event, *args, **values)

    def exception(self, event: str, *args: Any, **values: Any) -> Any:
        """An error with the current exception's traceback."""
        return self._logger().exception(event, *args, **values)

    def __repr__(self) -> str:
        return f"FabricLogger(name={self._name!r})"


def get_logger(name: str = "fabric_core") -> FabricLogger:
    """A logger for ``name``. Cheap, and safe at import: nothing is configured until it logs."""
    return FabricLogger(name)
