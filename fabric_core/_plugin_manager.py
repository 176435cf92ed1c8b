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
from fabric_core.errors import PluginValidationError

if TYPE_CHECKING:
    from torch import Tensor
    from torch.nn import Module
    from torch.optim import Optimizer

    from fabric_core.fabric import Fabric


class FabricPluginManager(pluggy.PluginManager):
    """pluggy's manager for project ``fabric_core``.

    Any callable attribute named ``fabric_*`` counts as a hook implementation, marked with
    ``@hookimpl`` or not (as pytest does for ``pytest_*``), so that a misspelled hook on a
    plain object is refused instead of silently never running. :meth:`register` compares
    each such attribute with the hookspecs' names and arguments and raises a
    :class:`~fabric_core.errors.PluginValidationError` naming the plugin and the hook.
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

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin`` after checking its ``fabric_*`` attributes against the hookspecs."""
        self._validate(plugin, name)
        try:
            registered = super().register(plugin, name)
        except pluggy.PluginValidationError as err:  # what _validate does not check (wrapper rules)
            raise PluginValidationError(
                f"Plugin {name or plugin!r} does not fit the fabric-core hook contract: {err}",
                plugin=plugin,
                plugin_name=name,
            ) from err
        for listener in self.listeners:
            listener()
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        removed = super().unregister(plugin, name)
        for listener in self.listeners:
            listener()
        return removed

    def check_pending(self) -> None:
        """Nothing is ever pending: :meth:`register` refuses a hook without a spec."""
        try:
            super().check_pending()
        except pluggy.PluginValidationError as err:
            raise PluginValidationError(str(err), plugin=err.plugin) from err

    def hook_names(self, plugin: object) -> list[str]:
        """The hooks ``plugin`` implements, sorted."""
        return sorted(caller.name for caller in self.get_hookcallers(plugin) or [])

    def _validate(self, plugin: object, name: str | None) -> None:
        label = repr(name) if name else repr(plugin)
        for attribute in dir(plugin):
            opts = self.parse_hookimpl_opts(plugin, attribute)
            if opts is None:
                continue
            hook = opts.get("specname") or attribute
            caller = getattr(self.hook, hook, None)
            if caller is None or caller.spec is None:
                if opts.get("optionalhook"):
                    continue
                close = difflib.get_close_matches(hook, SPEC_NAMES, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise PluginValidationError(
                    f"Plugin {label} implements {hook!r}, which is not a fabric-core hook.{hint} "
                    "Hook names are listed in fabric_core.hookspecs and docs/reference/hooks.md.",
                    plugin=plugin,
                    plugin_name=name,
                    hook=hook,
                )
            impl = pluggy.HookImpl(plugin, name or "", getattr(plugin, attribute), opts)
            unknown = [arg for arg in impl.argnames if arg not in caller.spec.argnames]
            if unknown:
                raise PluginValidationError(
                    f"Plugin {label} implements {hook} with argument(s) {', '.join(unknown)}, which the hook does "
                    f"not have; it is called with {', '.join(caller.spec.argnames)} (take any of them, by name).",
                    plugin=plugin,
                    plugin_name=name,
                    hook=hook,
                )


#: Every hook name of the contract (the functions of :mod:`fabric_core.hookspecs` marked as specs).
SPEC_NAMES: tuple[str, ...] = tuple(
    name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), f"{hookspecs.PROJECT_NAME}_spec")
)


def _is_wrapper(impl: pluggy.HookImpl) -> bool:
    return bool(impl.wrapper or impl.hookwrapper)


def _sole_owner(caller: pluggy.HookCaller) -> pluggy.HookImpl | None:
    """The one implementation of ``caller`` when there is exactly one and it is no wrapper."""
    impls = caller.get_hookimpls()
    return impls[0] if len(impls) == 1 and not _is_wrapper(impls[0]) else None


class FabricHooks:
    """Typed calls into one Fabric's plugin manager.

    :param fabric: passed to every hook as ``fabric``.
    """

    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric
        #: optimizer steps taken through this Fabric (the ``step`` of the library's log lines)
        self.steps = 0
        self.manager = FabricPluginManager()
        self._hook = self.manager.hook
        self.manager.listeners.append(self._plan_step_calls)
        self._plan_step_calls()

    # -- registration ----------------------------------------------------------------

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register ``plugin`` and validate it: known hook names and arguments only."""
        if self.manager.is_registered(plugin):
            return
        self.manager.register(plugin, name)

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
                    "the strategy.",
                    plugin=owners[-1].plugin,
                    plugin_name=owners[-1].plugin_name,
                    hook=hook_name,
                )

    # -- the fast path -------------------------------------------------------------------

    def _plan_step_calls(self) -> None:
        """Decide how the per-step hooks are called; the facade's whole fast path is here.

        Runs after every register/unregister. Entering pluggy costs about a microsecond per
        call, on every training step, so:

        * an event hook around backward or the optimizer step that nobody implements is not
          called at all;
        * when the strategy alone answers ``fabric_backward`` or ``fabric_optimizer_step``
          (no wrappers), it is called directly; the base ``Strategy``'s implementations only
          unpack their arguments, so for them ``Strategy.backward``/``optimizer_step`` is.

        Anything else (a wrapper, an implementation with other arguments) goes through pluggy.
        """
        from fabric_core.strategies.strategy import Strategy

        hook = self._hook
        self._before_backward = bool(hook.fabric_on_before_backward.get_hookimpls())
        self._after_backward = bool(hook.fabric_on_after_backward.get_hookimpls())
        self._before_step = bool(hook.fabric_on_before_optimizer_step.get_hookimpls())
        self._after_step = bool(hook.fabric_on_after_optimizer_step.get_hookimpls())

        self._direct_backward: Callable[..., Any] | None = None
        owner = _sole_owner(hook.fabric_backward)
        if owner is not None and getattr(owner.function, "__func__", None) is Strategy.fabric_backward:
            strategy_backward = owner.plugin.backward  # type: ignore[attr-defined]
            self._direct_backward = lambda tensor, module, args, kwargs: strategy_backward(
                tensor, module, *args, **kwargs
            )
        elif owner is not None and tuple(owner.argnames) == ("tensor", "module", "args", "kwargs"):
            self._direct_backward = owner.function

        self._direct_step: Callable[..., Any] | None = None
        owner = _sole_owner(hook.fabric_optimizer_step)
        if owner is not None and getattr(owner.function, "__func__", None) is Strategy.fabric_optimizer_step:
            strategy_step = owner.plugin.optimizer_step  # type: ignore[attr-defined]
            self._direct_step = lambda optimizer, kwargs: strategy_step(optimizer, **kwargs)
        elif owner is not None and tuple(owner.argnames) == ("optimizer", "kwargs"):
            self._direct_step = owner.function

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

    def save_checkpoint(self, path: str | Path, state: dict[str, Any], filter: dict[str, Any] | None) -> None:
        self._hook.fabric_on_save_checkpoint(fabric=self.fabric, path=path, state=state)
        self._hook.fabric_save_checkpoint(fabric=self.fabric, path=path, state=state, filter=filter)

    def load_checkpoint(
        self, path: str | Path, state: dict[str, Any] | None, strict: bool, weights_only: bool
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

    def on_load_checkpoint(self, path: str | Path, checkpoint: dict[str, Any]) -> None:
        self._hook.fabric_on_load_checkpoint(fabric=self.fabric, path=path, checkpoint=checkpoint)

    def on_teardown(self, status: str) -> None:
        self._hook.fabric_on_teardown(fabric=self.fabric, status=status)
