"""``Fabric``: Lightning Fabric's API, answered by plugins.

``Fabric(...)`` asks the connector for one accelerator, strategy, precision and cluster
environment, builds its own plugin manager, registers the strategy (the single owner of
the behaviour hooks), the loggers, the callbacks and any hook plugins, and from then on
every seam of the training loop is a hook call through :class:`FabricHooks`.

The class reads as its public API; the work is done next door, one concern per module:
argument checks in :mod:`fabric_core._validation`, the plugin manager and callbacks in
:mod:`fabric_core._assembly`, launch/environment/teardown in :mod:`fabric_core._lifecycle`,
the one setup path in :mod:`fabric_core._setup`, and two groups of methods that ``Fabric``
inherits: the training-step ones (``backward``, ``clip_gradients``, ``no_backward_sync``,
``init_module``, ``to_device``, ...) in :mod:`fabric_core._fabric_step` and the collectives
in :mod:`fabric_core._fabric_collectives`.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.nn import Module
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from fabric_core import _validation
from fabric_core._assembly import build_hooks, call_methods, resolve_callbacks, resolve_loggers
from fabric_core._connector import select
from fabric_core._fabric_collectives import CollectiveMethods
from fabric_core._fabric_step import StepMethods
from fabric_core._lifecycle import Lifecycle, launching_run, teardown_at_exit
from fabric_core._plugin_manager import FabricHooks
from fabric_core._setup import connect_lightning_module, setup_dataloader, setup_model, setup_optimizer
from fabric_core.accelerators.accelerator import Accelerator
from fabric_core.strategies.launchers import _errors
from fabric_core.strategies.launchers.watch import launched_by_fabric_run, watch_launcher
from fabric_core.strategies.strategy import Strategy
from fabric_core.utilities.apply_func import convert_tensors_to_scalars
from fabric_core.utilities.remote_paths import as_checkpoint_path
from fabric_core.utilities.seed import seed_everything as _seed_everything
from fabric_core.wrappers import FabricModule, FabricOptimizer, is_wrapped, unwrap_for_checkpoint


class Fabric(StepMethods, CollectiveMethods):
    """Run a plain PyTorch training loop on any device, strategy and precision.

    :param accelerator: ``"cpu"``, ``"cuda"``, ``"mps"``, ``"gpu"``, ``"auto"``, an add-on's
        name (``"tpu"``), or an :class:`~fabric_core.accelerators.Accelerator`.
    :param strategy: ``"auto"``, ``"single_device"``, an add-on's name (``"deepspeed"``), or
        a :class:`~fabric_core.strategies.Strategy`.
    :param devices: how many devices, which ones (``[0, 1]``, ``"0,1"``), ``-1`` for all or
        ``"auto"``.
    :param num_nodes: how many machines.
    :param precision: ``"32-true"`` (default), ``"64-true"``, ``"16-mixed"``,
        ``"bf16-mixed"``, ``"16-true"``, ``"bf16-true"``, or the aliases ``32``, ``16``,
        ``"bf16"``, ``64``.
    :param plugins: component instances (precision, cluster environment, checkpoint IO,
        strategy) and objects implementing ``fabric_*`` hooks.
    :param callbacks: objects whose methods ``fabric.call(name, ...)`` calls, which may also
        implement ``fabric_on_*`` event hooks; names of registered callbacks.
    :param loggers: :class:`~fabric_core.loggers.Logger` instances or registered names
        (``"csv"``).
    """

    def __init__(
        self,
        *,
        accelerator: str | Accelerator = "auto",
        strategy: str | Strategy = "auto",
        devices: list[int] | str | int = "auto",
        num_nodes: int = 1,
        precision: str | int | None = None,
        plugins: Any = None,
        callbacks: Any = None,
        loggers: Any = None,
    ) -> None:
        selection = select(
            accelerator=accelerator,
            strategy=strategy,
            devices=devices,
            num_nodes=num_nodes,
            precision=precision,
            plugins=plugins,
        )
        self._strategy: Strategy = selection.strategy
        self._accelerator: Accelerator = selection.accelerator
        self._precision = selection.precision
        self._hook_plugins = selection.hook_plugins
        self._callbacks = resolve_callbacks(callbacks)
        self._loggers = resolve_loggers(loggers)
        self._hooks = self._build_hooks()

        self._lifecycle = Lifecycle(self._strategy)
        atexit.register(teardown_at_exit, self)
        _errors.track_uncaught_exceptions()
        if self._lifecycle.started_outside and launched_by_fabric_run():
            # Under `fabric run` every process exists already: the process group starts here,
            # as in Lightning Fabric, so the script needs no fabric.launch(). Under torchrun or
            # srun it starts on first use instead (setup, a collective, launch()): the same
            # for the script, and a Fabric() made to inspect the environment does not wait.
            watch_launcher()
            self._setup_environment()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "run" in cls.__dict__:  # Lightning's subclass API: calling run() launches it
            cls.run = launching_run(cls.__dict__["run"])  # type: ignore[method-assign]

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Lightning's subclass API: define ``run`` in a subclass of ``Fabric``; calling it launches it."""
        raise NotImplementedError(
            "fabric.run() runs the run() method of a Fabric subclass (class MyFabric(Fabric): def run(self): ...), "
            "and this Fabric has none. Define one, or call fabric.launch(function)."
        )

    def _build_hooks(self) -> FabricHooks:
        """This Fabric's plugin manager: the strategy, discovered runtime plugins, hook plugins, callbacks, loggers."""
        return build_hooks(self, self._strategy, self._hook_plugins, self._loggers, self._callbacks)

    def __getstate__(self) -> dict[str, Any]:
        # Sent to processes started with "spawn": the plugin manager holds modules and
        # hook callers that do not pickle, so it is rebuilt on the other side.
        state = dict(self.__dict__)
        del state["_hooks"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._hooks = self._build_hooks()
        atexit.register(teardown_at_exit, self)

    # -- properties ------------------------------------------------------------------------

    @property
    def accelerator(self) -> Accelerator:
        return self._accelerator

    @property
    def strategy(self) -> Strategy:
        return self._strategy

    @property
    def device(self) -> torch.device:
        """The device this process computes on."""
        return self._strategy.root_device

    @property
    def global_rank(self) -> int:
        return self._strategy.global_rank

    @property
    def local_rank(self) -> int:
        return self._strategy.local_rank

    @property
    def node_rank(self) -> int:
        return self._strategy.node_rank

    @property
    def world_size(self) -> int:
        return self._strategy.world_size

    @property
    def is_global_zero(self) -> bool:
        return self._strategy.is_global_zero

    @property
    def loggers(self) -> list[Any]:
        return self._loggers

    @property
    def logger(self) -> Any:
        """The first logger; raises when none was given."""
        if not self._loggers:
            raise RuntimeError("fabric.logger was used, but no logger was given. Pass Fabric(loggers=...).")
        return self._loggers[0]

    @property
    def plugin_manager(self) -> Any:
        """This Fabric's pluggy manager, for inspection. Pass hook plugins as ``Fabric(plugins=[...])``:
        that path validates hook names and the single-owner rule."""
        return self._hooks.manager

    # -- launch ------------------------------------------------------------------------------

    def launch(self, function: Callable[..., Any] | None = None, *args: Any, **kwargs: Any) -> Any:
        """Start the processes this strategy needs, and run ``function(fabric, *args, **kwargs)`` if given."""
        return self._lifecycle.launch(self._run_launched, function, args, kwargs)

    def _run_launched(self, function: Callable[..., Any] | None, *args: Any, **kwargs: Any) -> Any:
        self._setup_environment()
        if function is None:
            return None
        try:
            result = function(self, *args, **kwargs)
        except BaseException:
            self._teardown("failed")
            raise
        self._teardown("success")
        return result

    def _setup_environment(self) -> None:
        self._lifecycle.set_up_environment(self._hooks)

    def _validate_launched(self) -> None:
        self._lifecycle.require_launched(self._hooks)

    def _teardown(self, status: str = "success") -> None:
        self._lifecycle.teardown(self._hooks, status)

    # -- setup -------------------------------------------------------------------------------

    def setup(
        self,
        module: Module,
        *optimizers: Optimizer,
        scheduler: Any = None,
        move_to_device: bool = True,
        _reapply_compile: bool = True,
    ) -> Any:
        """Set up a model and its optimizers (and scheduler) for training.

        :return: the wrapped model when no optimizer is given, otherwise
            ``(model, *optimizers)``, with the scheduler appended when one was given.
        """
        _validation.check_setup(module, optimizers)
        wrapped, wrapped_optimizers, scheduler = self._setup(module, list(optimizers), scheduler, move_to_device)
        if not optimizers:
            return wrapped if scheduler is None else (wrapped, scheduler)
        return (wrapped, *wrapped_optimizers) if scheduler is None else (wrapped, *wrapped_optimizers, scheduler)

    def setup_module(self, module: Module, move_to_device: bool = True, _reapply_compile: bool = True) -> Any:
        """Set up a model alone (its optimizers later, with :meth:`setup_optimizers`)."""
        _validation.check_setup(module, ())
        return self._setup(module, [], None, move_to_device)[0]

    def setup_optimizers(self, *optimizers: Optimizer) -> Any:
        """Set up optimizers for a model set up before with :meth:`setup_module`."""
        if not optimizers:
            raise ValueError("fabric.setup_optimizers() needs at least one optimizer.")
        _validation.check_optimizers(optimizers)
        self._validate_launched()
        wrapped = [setup_optimizer(self._hooks, self._strategy, optimizer) for optimizer in optimizers]
        return wrapped[0] if len(wrapped) == 1 else tuple(wrapped)

    def _setup(
        self, module: Module, optimizers: list[Optimizer], scheduler: Any, move_to_device: bool
    ) -> tuple[FabricModule, list[FabricOptimizer], Any]:
        """The one path of :meth:`setup` and :meth:`setup_module` (see :func:`fabric_core._setup.setup_model`)."""
        self._validate_launched()
        wrapped, wrapped_optimizers, scheduler = setup_model(
            self._hooks, self._strategy, self._precision, module, optimizers, scheduler, move_to_device
        )
        connect_lightning_module(self, wrapped.module, wrapped_optimizers, self._callbacks)
        self._hooks.on_after_setup(wrapped)
        self.call("on_after_setup", fabric=self, module=wrapped)
        return wrapped, wrapped_optimizers, scheduler

    def setup_dataloaders(
        self, *dataloaders: DataLoader, use_distributed_sampler: bool = True, move_to_device: bool = True
    ) -> Any:
        """Wrap dataloaders so that batches land on the device and epochs advance the sampler.

        :return: one wrapped dataloader, or a tuple of them.
        """
        if not dataloaders:
            raise ValueError("fabric.setup_dataloaders() needs at least one dataloader.")
        for dataloader in dataloaders:
            _validation.check_dataloader(dataloader)
        self._validate_launched()  # each process's share of the data needs its rank
        device = self.device if move_to_device else None
        wrapped = [setup_dataloader(self._strategy, loader, use_distributed_sampler, device) for loader in dataloaders]
        return wrapped[0] if len(wrapped) == 1 else tuple(wrapped)

    # -- printing and seeding -------------------------------------------------------------------

    def print(self, *args: Any, **kwargs: Any) -> None:
        """``print`` on global rank 0 only."""
        if self.local_rank == 0 and self.is_global_zero:
            print(*args, **kwargs)

    @staticmethod
    def seed_everything(seed: int | float | None = None, workers: bool | None = None, verbose: bool = True) -> int:
        """Seed ``random``, NumPy and torch; see :func:`fabric_core.seed_everything`.

        Unlike the function, ``workers`` defaults to ``True`` here (as in Lightning Fabric):
        dataloaders set up afterwards give each worker of each rank its own seed.
        """
        return _seed_everything(seed=seed, workers=True if workers is None else workers, verbose=verbose)

    # -- logging -------------------------------------------------------------------------------

    def log(self, name: str, value: Any, step: int | None = None) -> None:
        """Send one metric to every logger."""
        self.log_dict({name: value}, step=step)

    def log_dict(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Send several metrics to every logger. One-element tensors become Python numbers."""
        _validation.check_metrics(metrics)
        self._hooks.log(convert_tensors_to_scalars(dict(metrics)), step)

    def call(self, hook_name: str, *args: Any, **kwargs: Any) -> None:
        """Call ``hook_name(*args, **kwargs)`` on every callback that has such a method.

        As in Lightning Fabric, each method gets only the keyword arguments it accepts (all of
        them when it takes ``**kwargs``), and an attribute of that name that is not callable
        is skipped with a warning.
        """
        call_methods(self._callbacks, hook_name, args, kwargs)

    @property
    def callbacks(self) -> list[Any]:
        """The callbacks :meth:`call` reaches, in order (set-up LightningModule-style models included)."""
        return self._callbacks

    # -- checkpoints -----------------------------------------------------------------------

    def save(
        self,
        path: str | Path,
        state: dict[str, Any],
        filter: dict[str, Callable[[str, Any], bool]] | None = None,
    ) -> None:
        """Save ``state`` (models, optimizers, anything with a state dict, plain values) to ``path``.

        Only rank 0 writes (sharded strategies write from every rank); the file appears
        atomically. ``filter`` maps a key of ``state`` to a ``(name, value) -> bool`` that
        chooses which entries of that object's state dict are kept.
        """
        _validation.check_save_arguments(state, filter)
        self._validate_launched()
        self._hooks.save_checkpoint(as_checkpoint_path(path), _unwrap_state(state), filter)
        self.barrier("save")

    def load(
        self,
        path: str | Path,
        state: dict[str, Any] | None = None,
        strict: bool = True,
        *,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Restore the live objects in ``state`` from ``path``, updating plain values in place.

        :param strict: a key of ``state`` missing from the checkpoint is an error.
        :param weights_only: ``None`` (the default) or ``True`` load with
            ``torch.load(weights_only=True)``; pass ``False`` only for a checkpoint you trust
            that holds arbitrary Python objects.
        :return: what the checkpoint holds beyond ``state`` (all of it when ``state`` is ``None``).
        """
        _validation.check_load_state(state)
        self._validate_launched()
        unwrapped = _unwrap_state(state) if state is not None else None
        remainder = self._hooks.load_checkpoint(as_checkpoint_path(path), unwrapped, strict, weights_only is not False)
        self.barrier("load")
        if state is not None and unwrapped is not None:
            # Plain values were replaced in the unwrapped copy; give them back to the caller's dict.
            for key, value in unwrapped.items():
                if not is_wrapped(state[key]):
                    state[key] = value
        self._hooks.on_load_checkpoint(as_checkpoint_path(path), remainder)
        return remainder

    def load_raw(
        self, path: str | Path, obj: Module | Optimizer, strict: bool = True, weights_only: bool | None = None
    ) -> None:
        """Load a bare state dict saved with ``torch.save(model.state_dict())`` into ``obj``.

        It goes through the strategy's ``fabric_load_checkpoint`` and fires
        ``fabric_on_load_checkpoint``, as :meth:`load` does. ``weights_only`` as in :meth:`load`.
        """
        target = _validation.load_raw_target(obj)
        self._validate_launched()
        self._hooks.load_checkpoint(as_checkpoint_path(path), target, strict, weights_only is not False)  # type: ignore[arg-type]
        self._hooks.on_load_checkpoint(as_checkpoint_path(path), {})

    # -- misc -----------------------------------------------------------------------------------

    @staticmethod
    def is_wrapped(obj: object) -> bool:
        """Whether ``obj`` is a model, optimizer or dataloader returned by Fabric's setup methods."""
        return is_wrapped(obj)

    def __repr__(self) -> str:
        return (
            f"Fabric(accelerator={type(self._accelerator).__name__}, strategy={type(self._strategy).__name__}, "
            f"precision={self._precision.precision!r}, device={self.device})"
        )


def _unwrap_state(state: dict[str, Any]) -> dict[str, Any]:
    # A set-up dataloader stays wrapped: the wrapper holds the data position.
    return {key: unwrap_for_checkpoint(value) for key, value in state.items()}
