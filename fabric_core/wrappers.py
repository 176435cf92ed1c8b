"""The objects ``fabric.setup`` returns, which keep looking like the user's own.

* :class:`FabricModule` runs forward under the precision's context and converts inputs
  and outputs. Its ``state_dict`` has no wrapper prefix; attribute access falls through.
* :class:`FabricOptimizer` is an instance of the user's optimizer class (schedulers accept
  it); ``step()`` goes through the strategy.
* :class:`FabricDataLoader` moves batches to the device and calls ``set_epoch`` on the
  sampler at the start of every epoch. It is stateful (the data position, for exact resume);
  checkpoints keep it rather than the user's DataLoader (:func:`unwrap_for_checkpoint`).
  It is defined in :mod:`fabric_core._dataloader` (the data position takes most of it)
  and imported from here.

The guard that stops a model method from bypassing the strategy is in
:mod:`fabric_core._forward_guard`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from fabric_core._dataloader import FabricDataLoader
from fabric_core._forward_guard import OutsideForwardGuard

if TYPE_CHECKING:
    from fabric_core._plugin_manager import FabricHooks
    from fabric_core.strategies.strategy import Strategy


#: Methods of a LightningModule-style model that always run through the strategy's forward path.
STEP_METHODS = ("training_step", "validation_step", "test_step", "predict_step")

_NO_INSTANCE_FORWARD = object()


class FabricModule(nn.Module):
    """Wraps the module a strategy returned (``forward_module``) and the user's ``original_module``.

    For a single device both are the same object; under DDP the first is the
    ``DistributedDataParallel`` wrapper and the second the user's model.

    Calls never bypass the strategy: ``forward``, the step methods (:data:`STEP_METHODS`)
    and methods named with :meth:`mark_forward_method` run through ``forward_module``. Any
    other method of the user's model called on this wrapper while the strategy needs its
    forward path (DDP, FSDP, DeepSpeed, model parallel) runs under a guard that raises as
    soon as it calls a submodule or computes with a parameter, instead of training silently
    wrong.
    """

    def __init__(self, forward_module: nn.Module, strategy: Strategy, original_module: nn.Module | None = None) -> None:
        super().__init__()
        original_module = original_module or forward_module
        self._forward_module = forward_module
        # The same object again, in the instance dict: reading a registered child goes
        # through nn.Module.__getattr__ (~0.7 us), and forward runs every step.
        self.__dict__["_forward_call"] = forward_module
        # Stored outside nn.Module's registry so it is not a second child (no duplicate
        # parameters, no prefix in state dicts).
        self.__dict__["_original_module"] = original_module
        self.__dict__["_strategy"] = strategy
        self.__dict__["_forward_methods"] = set(STEP_METHODS)
        self.__dict__["_precision"] = strategy.precision
        self.__dict__["_guarded"] = forward_module is not original_module or getattr(
            strategy, "requires_forward_path", False
        )

    @property
    def module(self) -> nn.Module:
        """The user's model."""
        return self._original_module  # type: ignore[no-any-return]

    @property
    def device(self) -> torch.device:
        """Where the model's parameters (or buffers) are; the strategy's device for a model without any."""
        tensor = _first_tensor(self._original_module)
        return tensor.device if tensor is not None else self._strategy.root_device  # type: ignore[no-any-return]

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the model's floating-point parameters (torch's default dtype without any)."""
        tensor = _first_tensor(self._original_module, floating=True)
        return tensor.dtype if tensor is not None else torch.get_default_dtype()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        precision = self._precision
        forward_module = self._forward_call
        if not precision.converts:
            return forward_module(*args, **kwargs)
        args, kwargs = precision.convert_input((args, kwargs))
        with precision.forward_context():
            output = forward_module(*args, **kwargs)
        return precision.convert_output(output)

    def mark_forward_method(self, method: str | Callable[..., Any]) -> None:
        """Route calls of another method (``model.generate(...)``) through the strategy and precision, like forward.

        Inside the method, ``self(...)`` and ``self.forward(...)`` are the real forward again,
        so a ``generate`` loop over ``self(x)`` works.
        """
        name = method if isinstance(method, str) else getattr(method, "__name__", "")
        if not isinstance(getattr(self._original_module, name, None), Callable):  # type: ignore[arg-type]
            raise ValueError(
                f"mark_forward_method({method!r}): {type(self._original_module).__name__} has no method {name!r}."
            )
        if name == "forward":
            raise ValueError("mark_forward_method('forward'): forward already runs through Fabric.")
        self._forward_methods.add(name)

    def _redirected(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        original = self._original_module

        def call(*args: Any, **kwargs: Any) -> Any:
            # The method runs as the forward of the forward module, so the strategy's wrapper
            # (DDP's gradient sync, FSDP's gathering) sees it like a forward pass. It puts the
            # real forward back first: the method may call self(...) itself.
            previous = original.__dict__.get("forward", _NO_INSTANCE_FORWARD)

            def run_method(*method_args: Any, **method_kwargs: Any) -> Any:
                _restore_forward(original, previous)
                return method(*method_args, **method_kwargs)

            original.forward = run_method
            try:
                return self(*args, **kwargs)
            finally:
                _restore_forward(original, previous)

        return call

    def _guard(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        original = self._original_module
        strategy = type(self._strategy).__name__

        def call(*args: Any, **kwargs: Any) -> Any:
            with OutsideForwardGuard(original, name, strategy):
                return method(*args, **kwargs)

        return call

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self._original_module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        return self._original_module.load_state_dict(state_dict, strict=strict, assign=assign)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            original = self.__dict__.get("_original_module")
            if original is None:
                raise
        attribute = getattr(original, name)
        if not inspect.ismethod(attribute) or attribute.__self__ is not original or hasattr(nn.Module, name):
            return attribute
        if name in self.__dict__["_forward_methods"]:
            return self._redirected(name, attribute)
        if self.__dict__["_guarded"]:
            return self._guard(name, attribute)
        return attribute

    def __setattr__(self, name: str, value: Any) -> None:
        original = self.__dict__.get("_original_module")
        if original is not None and not name.startswith("_") and hasattr(original, name) and name not in self.__dict__:
            setattr(original, name, value)
            return
        super().__setattr__(name, value)

    def __repr__(self) -> str:
        return f"FabricModule({self._original_module!r})"


def _first_tensor(module: nn.Module, floating: bool = False) -> Tensor | None:
    for tensor in (*module.parameters(), *module.buffers()):
        if not floating or tensor.is_floating_point():
            return tensor
    return None


def _restore_forward(module: nn.Module, previous: Any) -> None:
    if previous is _NO_INSTANCE_FORWARD:
        module.__dict__.pop("forward", None)
    else:
        module.__dict__["forward"] = previous


class FabricOptimizer:
    """Stands in for the user's optimizer: same class (by subclassing), shared state.

    ``param_groups``, ``state`` and ``defaults`` are the original optimizer's own objects,
    so learning-rate schedulers and direct edits act on the real optimizer.
    """

    def __init__(self, optimizer: Optimizer, strategy: Strategy, hooks: FabricHooks) -> None:
        # A class made per optimizer type, so isinstance(wrapped, type(optimizer)) holds.
        self.__class__ = type(f"Fabric{type(optimizer).__name__}", (FabricOptimizer, type(optimizer)), {})
        self._optimizer = optimizer
        self._strategy = strategy
        self._hooks = hooks
        # The Fabric's own list (callbacks added later, a LightningModule's, appear in it):
        # read on every step, so kept here rather than looked up through the Fabric.
        self._callbacks: list[Any] = hooks.fabric.callbacks

    @property
    def optimizer(self) -> Optimizer:
        """The user's optimizer."""
        return self._optimizer

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self._optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self._optimizer.param_groups = value

    @property
    def state(self) -> Any:  # type: ignore[override]
        return self._optimizer.state

    @state.setter
    def state(self, value: Any) -> None:
        self._optimizer.state = value

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return self._optimizer.defaults

    @defaults.setter
    def defaults(self, value: dict[str, Any]) -> None:
        self._optimizer.defaults = value

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        kwargs = {} if closure is None else {"closure": closure}
        if not self._callbacks:
            return self._hooks.optimizer_step(self._optimizer, kwargs)
        # Lightning's callback methods, besides the fabric_on_*_optimizer_step event hooks.
        fabric = self._hooks.fabric
        fabric.call("on_before_optimizer_step", strategy=self._strategy, optimizer=self._optimizer)
        result = self._hooks.optimizer_step(self._optimizer, kwargs)
        fabric.call("on_after_optimizer_step", strategy=self._strategy, optimizer=self._optimizer)
        return result

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return self._strategy.get_optimizer_state(self._optimizer)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._optimizer.load_state_dict(state_dict)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self._optimizer.add_param_group(param_group)

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes not found normally: the optimizer's own internals.
        if name == "_optimizer":
            raise AttributeError(name)
        return getattr(self._optimizer, name)

    def __repr__(self) -> str:
        return f"Fabric{self._optimizer!r}"


def unwrap(obj: Any) -> Any:
    """The user's object behind a Fabric wrapper (compiled modules included)."""
    if isinstance(obj, FabricModule):
        return obj._original_module
    compiled = getattr(obj, "_orig_mod", None)
    if isinstance(compiled, FabricModule):
        return compiled._original_module
    if isinstance(obj, FabricOptimizer):
        return obj.optimizer
    if isinstance(obj, FabricDataLoader):
        return obj._dataloader
    return obj


def unwrap_for_checkpoint(obj: Any) -> Any:
    """The object whose state ``fabric.save``/``fabric.load`` handle for ``obj``.

    That is :func:`unwrap`'s user object, except for a :class:`FabricDataLoader`, which stays
    itself: it holds the data position (a plain DataLoader has no state to save).
    """
    return obj if isinstance(obj, FabricDataLoader) else unwrap(obj)


def is_wrapped(obj: object) -> bool:
    """Whether ``obj`` was returned by ``fabric.setup*`` (a module, optimizer or dataloader)."""
    if isinstance(getattr(obj, "_orig_mod", None), FabricModule):
        return True
    return isinstance(obj, (FabricModule, FabricOptimizer, FabricDataLoader))


def unwrap_objects(collection: Any) -> Any:
    """``collection`` (a model, optimizer, dataloader, or a dict/list/tuple of them) with every Fabric wrapper
    replaced by the user's own object, as Lightning's ``_unwrap_objects``."""
    if isinstance(collection, dict):
        return {key: unwrap_objects(value) for key, value in collection.items()}
    if isinstance(collection, (list, tuple)) and not hasattr(collection, "_fields"):
        return type(collection)(unwrap_objects(value) for value in collection)
    return unwrap(collection)


__all__ = [
    "STEP_METHODS",
    "FabricDataLoader",
    "FabricModule",
    "FabricOptimizer",
    "is_wrapped",
    "unwrap",
    "unwrap_for_checkpoint",
    "unwrap_objects",
]

# Lightning Fabric's names for these, for scripts that import them from ``lightning.fabric.wrappers``.
_FabricModule = FabricModule
_FabricOptimizer = FabricOptimizer
_FabricDataLoader = FabricDataLoader
_unwrap_objects = unwrap_objects


def _unwrap_compiled(obj: Any) -> tuple[Any, dict[str, Any] | None]:
    """Lightning's helper: the module inside a ``torch.compile`` wrapper, and the compile arguments
    (not recorded here: ``None``)."""
    inner = getattr(obj, "_orig_mod", None)
    return (inner, None) if isinstance(inner, nn.Module) else (obj, None)
