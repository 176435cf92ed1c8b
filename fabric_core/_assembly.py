"""What a ``Fabric`` is made of besides its selection: callbacks, loggers, its plugin manager.

:func:`resolve_callbacks` and :func:`resolve_loggers` turn ``Fabric(callbacks=...,
loggers=...)`` into objects (registered names are created through the registry);
:func:`build_hooks` registers everything on the Fabric's own plugin manager, in the order
that decides who hears an event first; :func:`call_methods` is ``fabric.call``'s
Lightning-style duck-typed dispatch to callback methods.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from fabric_core._discovery import discover
from fabric_core._lookup import lookup
from fabric_core._plugin_manager import FabricHooks
from fabric_core.loggers.logger import Logger, LoggerAdapter, is_logger_like
from fabric_core.utilities.signature import accepted_kwargs

if TYPE_CHECKING:
    from fabric_core.fabric import Fabric
    from fabric_core.strategies.strategy import Strategy


def as_list(value: Any) -> list[Any]:
    """``None`` as ``[]``, a list or tuple as a list, anything else as a one-item list."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def resolve_callbacks(callbacks: Any) -> list[Any]:
    """Callback objects, with registered names (``"progress"``) created from the registry."""
    return [lookup("callback", item).create() if isinstance(item, str) else item for item in as_list(callbacks)]


def resolve_loggers(loggers: Any) -> list[Any]:
    """Logger objects, with registered names (``"csv"``) created; anything not logger-like is refused."""
    resolved: list[Any] = []
    for item in as_list(loggers):
        logger = lookup("logger", item).create() if isinstance(item, str) else item
        if not isinstance(logger, Logger) and not is_logger_like(logger):
            raise TypeError(
                f"Fabric(loggers=[...]) got {type(logger).__name__!r}, which is not a logger: expected a "
                "fabric_core.loggers.Logger, any object with log_metrics() and log_hyperparams() methods (a "
                "Lightning logger, say), or a registered logger name such as 'csv'."
            )
        resolved.append(logger)
    return resolved


def build_hooks(
    fabric: Fabric, strategy: Strategy, hook_plugins: list[Any], loggers: list[Any], callbacks: list[Any]
) -> FabricHooks:
    """A Fabric's plugin manager: the strategy, discovered runtime plugins, hook plugins, callbacks, loggers."""
    hooks = FabricHooks(fabric)
    hooks.register(strategy, name="strategy")
    for plugin_name, module in discover().runtime_plugins():
        hooks.register(module, name=plugin_name)
    for index, plugin in enumerate(hook_plugins):
        hooks.register(plugin, name=f"plugin-{index}:{type(plugin).__name__}")
    # pluggy calls the plugin registered last first: registering in reverse makes the
    # loggers, then the callbacks, hear every event in the order the user gave them,
    # callbacks before loggers (what a callback logs at teardown is written before the
    # loggers finalize).
    for index, logger in reversed(list(enumerate(loggers))):
        # Loggers of other libraries take part through an adapter (pluggy would inspect a Mock's every attribute).
        plugin = logger if isinstance(logger, Logger) else LoggerAdapter(logger)
        hooks.register(plugin, name=f"logger-{index}:{type(logger).__name__}")
    for index, callback in reversed(list(enumerate(callbacks))):
        hooks.register(callback, name=f"callback-{index}:{type(callback).__name__}")
    hooks.validate_single_owners()
    return hooks


def call_methods(callbacks: list[Any], hook_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Call ``hook_name(*args, **kwargs)`` on every callback that has such a method (``fabric.call``).

    Each method gets only the keyword arguments it accepts (all of them when it takes
    ``**kwargs``); an attribute of that name that is not callable is skipped with a warning
    pointing at the caller of ``fabric.call``.
    """
    for callback in callbacks:
        method = getattr(callback, hook_name, None)
        if method is None:
            continue
        if not callable(method):
            warnings.warn(
                f"fabric.call({hook_name!r}) skipped {type(callback).__name__}.{hook_name}: it is not callable "
                f"({type(method).__name__}). Rename the attribute, or make it a method.",
                UserWarning,
                stacklevel=3,
            )
            continue
        method(*args, **accepted_kwargs(method, kwargs))
