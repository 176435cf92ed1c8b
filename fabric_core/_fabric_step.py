"""``Fabric``'s training-step methods: ``backward``, ``clip_gradients``, ``autocast``,
``no_backward_sync``, ``init_module``, ``init_tensor``, ``to_device``.

A part of :class:`~fabric_core.fabric.Fabric`, kept in a module of its own. ``backward``
is on the per-step hot path: it makes one call into the hook facade and nothing else
(``benchmarks/hot_path.py`` measures it).
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from torch import Tensor
from torch.nn import Module
from torch.optim import Optimizer

from fabric_core import _validation
from fabric_core.utilities.rank_zero import rank_zero_deprecation
from fabric_core.wrappers import FabricModule, unwrap

if TYPE_CHECKING:
    from fabric_core._plugin_manager import FabricHooks
    from fabric_core.accelerators.accelerator import Accelerator
    from fabric_core.precision.precision import Precision
    from fabric_core.strategies.strategy import Strategy


class StepMethods:
    """Fabric's methods used inside the training loop and to create models and tensors."""

    if TYPE_CHECKING:
        _strategy: Strategy
        _accelerator: Accelerator
        _precision: Precision
        _hooks: FabricHooks

        def _validate_launched(self) -> None: ...

    def backward(self, tensor: Tensor, *args: Any, model: FabricModule | None = None, **kwargs: Any) -> None:
        """Run ``tensor.backward()`` the way the strategy and precision need (loss scaling, ...)."""
        module = model._forward_module if isinstance(model, FabricModule) else model
        self._hooks.backward(tensor, module, args, kwargs)

    def clip_gradients(
        self,
        module: Module,
        optimizer: Optimizer,
        clip_val: float | int | None = None,
        max_norm: float | int | None = None,
        norm_type: float | int = 2.0,
        error_if_nonfinite: bool = True,
    ) -> Tensor | None:
        """Clip the gradients of ``module``'s parameters by value or by norm (unscaling AMP first).

        :return: the total norm before clipping when ``max_norm`` is given.
        """
        _validation.check_clip_arguments(clip_val, max_norm)
        user_module, user_optimizer = unwrap(module), unwrap(optimizer)
        if max_norm is not None:
            return self._strategy.clip_gradients_norm(
                user_module,
                user_optimizer,
                max_norm=max_norm,
                norm_type=norm_type,
                error_if_nonfinite=error_if_nonfinite,
            )
        assert clip_val is not None
        self._strategy.clip_gradients_value(user_module, user_optimizer, clip_val=clip_val)
        return None

    def autocast(self) -> AbstractContextManager:
        """The precision's forward context, for code outside the model's forward (a loss, say)."""
        return self._precision.forward_context()

    @contextmanager
    def no_backward_sync(self, module: Module, enabled: bool = True) -> Generator[None, None, None]:
        """Skip gradient synchronization inside the block (gradient accumulation)."""
        if not isinstance(module, FabricModule):
            raise TypeError(
                "fabric.no_backward_sync() needs the model returned by fabric.setup(); set the model up first."
            )
        control = self._strategy.backward_sync_control
        if not enabled or control is None:
            yield
            return
        with control(module._forward_module, enabled):
            yield

    def init_module(self, empty_init: bool | None = None) -> AbstractContextManager:
        """Create a model directly on the device, in the precision's dtype.

        :param empty_init: skip weight initialisation (the weights will be loaded anyway).
        """
        self._validate_launched()
        return self._strategy.module_init_context(empty_init=empty_init)

    def sharded_model(self) -> AbstractContextManager:
        """Deprecated, as in Lightning Fabric: runs :meth:`init_module` after a deprecation warning."""
        rank_zero_deprecation(
            "fabric.sharded_model() is deprecated (as in Lightning Fabric); it runs fabric.init_module() now. "
            "Use `with fabric.init_module():` instead.",
            stacklevel=4,  # the caller of sharded_model (through rank_zero_only's wrapper)
        )
        return self.init_module()

    def init_tensor(self) -> AbstractContextManager:
        """Create tensors directly on the device, in the precision's dtype."""
        return self._strategy.tensor_init_context()

    def to_device(self, obj: Any) -> Any:
        """Move a module, a tensor or a collection of tensors to this process's device."""
        if isinstance(obj, Module):
            self._accelerator.setup_device(self._strategy.root_device)
            self._strategy.module_to_device(obj)
            return obj
        return self._strategy.batch_to_device(obj)
