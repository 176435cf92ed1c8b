"""The pluggy manager, and the typed facade the core calls hooks through.

Core code never calls ``pm.hook.fabric_x(...)`` directly: it calls a typed method of
:class:`FabricHooks`, which also keeps the per-step cost down (event hooks nobody
implements are skipped without entering pluggy).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from fabric_core import hookspecs

if TYPE_CHECKING:
    from torch import Tensor
    from torch.nn import Module
    from torch.optim import Optimizer

    from fabric_core.fabric import Fabric


class PluginValidationError(TypeError):
    """A plugin object implements a hook wrongly (unknown name, bad signature, two owners)."""


class FabricPluginManager(pluggy.PluginManager):
    """pluggy's manager for project ``fabric_core``.

    Any callable attribute named ``fabric_*`` counts as a hook implementation, marked with
    ``@hookimpl`` or not (as pytest does for ``pytest_*``), so that a misspelled hook on a
    plain object is caught by :meth:`check_pending` instead of silently never running.
    """

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        #: called after every register/unregister, so caches built on the registrations stay true
        self.listeners: list[Callable[[], None]] = []

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        # Check the name before touching the attribute: properties of a strategy may not be
        # readable before setup.
        if not name.startswith("fabric_"):
            return None
        method = getattr(plugin, name, None)
        if not inspect.isroutine(method):
            return None
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None:
            opts = {
                "wrapper": False,
                "hookwrapper": False,
                "optionalhook": False,
                "tryfirst": False,
                "trylast": False,
                "specname": None,
            }
        return opts

    def check_pending(self) -> None:
        """Raise :class:`PluginValidationError` naming the plugin and the closest real hook."""
        try:
            super().check_pending()
        except pluggy.PluginValidationError as err:
            raise PluginValidationError(self._explain(err)) from err

    def register(self, plugin: object, name: str | None = None) -> str | None:
        try:
            registered = super().register(plugin, name)
        except pluggy.PluginValidationError as err:
            raise PluginValidationError(self._explain(err)) from err
        for listener in self.listeners:
            listener()
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        removed = super().unregister(plugin, name)
        for listener in self.listeners:
            listener()
        return removed

    def _explain(self, err: pluggy.PluginValidationError) -> str:
        message = str(err)
        known = [name for name in dir(hookspecs) if name.startswith("fabric_")]
        for word in message.replace("'", " ").replace('"', " ").split():
            if word.startswith("fabric_") and word not in known:
                close = difflib.get_close_matches(word, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                return (
                    f"Plugin {err.plugin!r} implements {word!r}, which is not a fabric-core hook.{hint} "
                    "Hook names are listed in fabric_core.hookspecs and docs/reference/hooks.md."
                )
        return f"Plugin {err.plugin!r} does not fit the fabric-core hook contract: {message}"


def _is_wrapper(impl: pluggy.HookImpl) -> bool:
    return bool(impl.wrapper or impl.hookwrapper)


class FabricHooks:
    """Typed calls into one Fabric's plugin manager.

    :param fabric: passed to every hook as ``fabric``.
    """

    #: event hooks checked on every step; the facade remembers which have implementations
    _EVENT_HOOKS = (
        "fabric_on_before_backward",
        "fabric_on_after_backward",
        "fabric_on_before_optimizer_step",
        "fabric_on_after_optimizer_step",
    )

    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric
        #: optimizer steps taken through this Fabric (the ``step`` of the library's log lines)
        self.steps = 0
        self.manager = FabricPluginManager()
        self._hook = self.manager.hook
        self._active: dict[str, bool] = {}
        self._direct_backward: Callable[..., Any] | None = None
        self._direct_step: Callable[..., Any] | None = None
        self.manager.listeners.append(self._refresh)
        self._refresh()

    # -- registration ----------------------------------------------------------------

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register ``plugin`` and validate it: known hook names only."""
        if self.manager.is_registered(plugin):
            return
        self.manager.register(plugin, name)
        try:
            self.manager.check_pending()
        except PluginValidationError:
            self.manager.unregister(plugin)
            raise

    def unregister(self, plugin: object) -> None:
        if self.manager.is_registered(plugin):
            self.manager.unregister(plugin)

    def validate_single_owners(self) -> None:
        """Refuse a second non-wrapper implementation of a single-owner hook."""
        for hook_name in hookspecs.SINGLE_OWNER_HOOKS:
            owners = [impl for impl in getattr(self._hook, hook_name).get_hookimpls() if not _is_wrapper(impl)]
            if len(owners) > 1:
                names = " and ".join(f"{impl.plugin_name!r} ({type(impl.plugin).__name__})" for impl in owners)
                raise PluginValidationError(
                    f"{hook_name} is implemented by {names}, but only the strategy may answer it. "
                    f"Make the other implementation a wrapper with @hookimpl(wrapper=True), or pass it as "
                    "the strategy."
                )

    def _refresh(self) -> None:
        self._active = {name: bool(getattr(self._hook, name).get_hookimpls()) for name in self._EVENT_HOOKS}
        # When the strategy alone answers backward/step (no wrappers), call it directly:
        # entering pluggy costs about a microsecond per call, on every training step.
        self._direct_backward = self._sole_owner("fabric_backward", ("tensor", "module", "args", "kwargs"))
        self._direct_step = self._sole_owner("fabric_optimizer_step", ("optimizer", "kwargs"))
        self._bind_fast_paths()
        self._before_backward = self._active["fabric_on_before_backward"]
        self._after_backward = self._active["fabric_on_after_backward"]
        self._before_step = self._active["fabric_on_before_optimizer_step"]
        self._after_step = self._active["fabric_on_after_optimizer_step"]

    def _sole_owner(self, hook_name: str, argnames: tuple[str, ...]) -> Callable[..., Any] | None:
        impls = getattr(self._hook, hook_name).get_hookimpls()
        if len(impls) == 1 and not _is_wrapper(impls[0]) and tuple(impls[0].argnames) == argnames:
            function: Callable[..., Any] = impls[0].function
            return function
        return None

    def _bind_fast_paths(self) -> None:
        from fabric_core.strategies.strategy import Strategy

        backward, step = self._direct_backward, self._direct_step
        # The base Strategy's implementations only unpack their arguments; skip that frame.
        if getattr(backward, "__func__", None) is Strategy.fabric_backward:
            strategy_backward = backward.__self__.backward  # type: ignore[union-attr]
            self._direct_backward = lambda tensor, module, args, kwargs: strategy_backward(
                tensor, module, *args, **kwargs
            )
        if getattr(step, "__func__", None) is Strategy.fabric_optimizer_step:
            strategy_step = step.__self__.optimizer_step  # type: ignore[union-attr]
            self._direct_step = lambda optimizer, kwargs: strategy_step(optimizer, **kwargs)

    # -- behaviour hooks ---------------------------------------------------------------

    def setup_model(
        self, module: Module, optimizers: list[Optimizer], scheduler: Any
    ) -> tuple[Module, list[Optimizer], Any]:
        result: tuple[Module, list[Optimizer], Any] = self._hook.fabric_setup_model(
            fabric=self.fabric, module=module, optimizers=optimizers, scheduler=scheduler
        )
        return result

    def setup_optimizer(self, optimizer: Optimizer) -> Optimizer:
        result: Optimizer = self._hook.fabric_setup_optimizer(fabric=self.fabric, optimizer=optimizer)
        return result

    def backward(self, tensor: Tensor, module: Module | None, args: tuple, kwargs: dict) -> None:
        if self._before_backward:
            self._hook.fabric_on_before_backward(fabric=self.fabric, loss=tensor)
        if self._direct_backward is not None:
            self._direct_backward(tensor, module, args, kwargs)
        else:
            self._hook.fabric_backward(fabric=self.fabric, tensor=tensor, module=module, args=args, kwargs=kwargs)
        if self._after_backward:
            self._hook.fabric_on_after_backward(fabric=self.fabric)

    def optimizer_step(self, optimizer: Optimizer, kwargs: dict) -> Any:
        self.steps += 1
        if self._before_step:
            self._hook.fabric_on_before_optimizer_step(fabric=self.fabric, optimizer=optimizer)
        if self._direct_step is not None:
            result = self._direct_step(optimizer, kwargs)
        else:
            result = self._hook.fabric_optimizer_step(fabric=self.fabric, optimizer=optimizer, kwargs=kwargs)
        if self._after_step:
            self._hook.fabric_on_after_optimizer_step(fabric=self.fabric, optimizer=optimizer)
        return result

    def save_checkpoint(self, path: Path, state: dict[str, Any], filter: dict[str, Any] | None) -> None:
        self._hook.fabric_on_save_checkpoint(fabric=self.fabric, path=path, state=state)
        self._hook.fabric_save_checkpoint(fabric=self.fabric, path=path, state=state, filter=filter)

    def load_checkpoint(
        self, path: Path, state: dict[str, Any] | None, strict: bool, weights_only: bool
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._hook.fabric_load_checkpoint(
            fabric=self.fabric, path=path, state=state, strict=strict, weights_only=weights_only
        )
        return result

    def log(self, metrics: dict[str, Any], step: int | None) -> None:
        self._hook.fabric_log(fabric=self.fabric, metrics=metrics, step=step)

    # -- events ------------------------------------------------------------------------

    def on_launch(self) -> None:
        self._hook.fabric_on_launch(fabric=self.fabric)

    def on_after_setup(self, module: Module) -> None:
        self._hook.fabric_on_after_setup(fabric=self.fabric, module=module)

    def on_load_checkpoint(self, path: Path, checkpoint: dict[str, Any]) -> None:
        self._hook.fabric_on_load_checkpoint(fabric=self.fabric, path=path, checkpoint=checkpoint)

    def on_teardown(self, status: str) -> None:
        self._hook.fabric_on_teardown(fabric=self.fabric, status=status)
