"""``Fabric``: Lightning Fabric's API, answered by plugins.

``Fabric(...)`` asks the connector for one accelerator, strategy, precision and cluster
environment, builds its own plugin manager, registers the strategy (the single owner of
the behaviour hooks), the loggers, the callbacks and any hook plugins, and from then on
every seam of the training loop is a hook call through :class:`FabricHooks`.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import os
import warnings
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, overload

import torch
from torch import Tensor
from torch.nn import Module
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from fabric_core import _logging
from fabric_core._connector import select
from fabric_core._discovery import discover
from fabric_core._lookup import lookup
from fabric_core._plugin_manager import FabricHooks
from fabric_core.accelerators.accelerator import Accelerator
from fabric_core.data import distribute_dataloader
from fabric_core.loggers.logger import Logger, LoggerAdapter, is_logger_like
from fabric_core.strategies.launchers import _errors
from fabric_core.strategies.launchers.watch import launched_by_fabric_run, watch_launcher
from fabric_core.strategies.strategy import Strategy, is_stateful
from fabric_core.utilities.apply_func import (
    apply_to_collection,
    convert_tensors_to_scalars,
    convert_to_tensors,
)
from fabric_core.utilities.rank_zero import rank_zero_only
from fabric_core.utilities.seed import seed_everything as _seed_everything
from fabric_core.utilities.seed import worker_init_function
from fabric_core.utilities.signature import accepted_kwargs
from fabric_core.wrappers import (
    FabricDataLoader,
    FabricModule,
    FabricOptimizer,
    is_wrapped,
    unwrap,
    unwrap_for_checkpoint,
)

_log = _logging.get_logger(__name__)


class Fabric:
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
        self._callbacks = self._resolve_callbacks(callbacks)
        self._loggers = self._resolve_loggers(loggers)
        self._hooks = self._build_hooks()

        self._launched = False
        self._environment_ready = False
        self._torn_down = False
        atexit.register(_teardown_at_exit, self)
        _errors.track_uncaught_exceptions()
        if self._processes_started_outside() and launched_by_fabric_run():
            # Under `fabric run` every process exists already: the process group starts here,
            # as in Lightning Fabric, so the script needs no fabric.launch(). Under torchrun or
            # srun it starts on first use instead (setup, a collective, launch()): the same
            # for the script, and a Fabric() made to inspect the environment does not wait.
            watch_launcher()
            self._setup_environment()

    def _build_hooks(self) -> FabricHooks:
        """This Fabric's plugin manager: the strategy, discovered runtime plugins, hook plugins, callbacks, loggers."""
        hooks = FabricHooks(self)
        hooks.register(self._strategy, name="strategy")
        for plugin_name, module in discover().runtime_plugins():
            hooks.register(module, name=plugin_name)
        for index, plugin in enumerate(self._hook_plugins):
            hooks.register(plugin, name=f"plugin-{index}:{type(plugin).__name__}")
        # pluggy calls the plugin registered last first: registering in reverse makes the
        # loggers, then the callbacks, hear every event in the order the user gave them,
        # callbacks before loggers (what a callback logs at teardown is written before the
        # loggers finalize).
        for index, logger in reversed(list(enumerate(self._loggers))):
            # Loggers of other libraries take part through an adapter (pluggy would inspect a Mock's every attribute).
            plugin = logger if isinstance(logger, Logger) else LoggerAdapter(logger)
            hooks.register(plugin, name=f"logger-{index}:{type(logger).__name__}")
        for index, callback in reversed(list(enumerate(self._callbacks))):
            hooks.register(callback, name=f"callback-{index}:{type(callback).__name__}")
        hooks.validate_single_owners()
        return hooks

    def __getstate__(self) -> dict[str, Any]:
        # Sent to processes started with "spawn": the plugin manager holds modules and
        # hook callers that do not pickle, so it is rebuilt on the other side.
        state = dict(self.__dict__)
        del state["_hooks"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._hooks = self._build_hooks()
        atexit.register(_teardown_at_exit, self)

    # -- components --------------------------------------------------------------------------

    def _resolve_callbacks(self, callbacks: Any) -> list[Any]:
        return [lookup("callback", item).create() if isinstance(item, str) else item for item in _as_list(callbacks)]

    def _resolve_loggers(self, loggers: Any) -> list[Any]:
        resolved: list[Any] = []
        for item in _as_list(loggers):
            logger = lookup("logger", item).create() if isinstance(item, str) else item
            if not isinstance(logger, Logger) and not is_logger_like(logger):
                raise TypeError(
                    f"Fabric(loggers=[...]) got {type(logger).__name__!r}, which is not a logger: expected a "
                    "fabric_core.loggers.Logger, any object with log_metrics() and log_hyperparams() methods (a "
                    "Lightning logger, say), or a registered logger name such as 'csv'."
                )
            resolved.append(logger)
        return resolved

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
        if function is not None and not callable(function):
            raise TypeError(
                f"fabric.launch({function!r}): expected a function taking the Fabric object as its first argument."
            )
        if self._launched:
            raise RuntimeError("fabric.launch() was called twice; call it once, at the start of the script.")
        if self._processes_started_outside():
            # The processes and the process group exist already (see __init__): launching is
            # a no-op, so scripts written with or without launch() both run.
            self._launched = True
            return self._run_launched(function, *args, **kwargs)
        if function is not None:
            parameters = [p for p in inspect.signature(function).parameters.values() if p.kind is not p.VAR_KEYWORD]
            if not parameters:
                raise TypeError(
                    f"fabric.launch({getattr(function, '__name__', function)}): the function must take the Fabric "
                    "object as its first argument, for example def train(fabric): ..."
                )
        launcher = self._strategy.launcher
        if launcher is not None and not launcher.is_interactive_compatible and _in_interactive_session():
            raise RuntimeError(
                f"{self._strategy!r} cannot start its processes from an interactive session or notebook. Use "
                "strategy='ddp_notebook' here, or run your code as a script."
            )
        if launcher is not None and launcher.requires_function and function is None:
            raise RuntimeError(
                f"{self._strategy!r} starts new processes that run only the function given to launch(), so "
                "fabric.launch() needs one: fabric.launch(train) with def train(fabric): .... Or use strategy='ddp', "
                "which runs the whole script in every process."
            )
        self._launched = True
        if launcher is not None:
            return launcher.launch(self._run_launched, function, *args, **kwargs)
        return self._run_launched(function, *args, **kwargs)

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
        if self._environment_ready:
            return
        self._strategy.setup_environment()
        rank_zero_only.rank = self.global_rank  # type: ignore[attr-defined]
        _logging.set_rank(self.global_rank, self.world_size)
        _logging.set_step_source(self._hooks)
        self._environment_ready = True
        self._hooks.on_launch()

    def _processes_started_outside(self) -> bool:
        """Whether a launcher other than Fabric (fabric run, torchrun, srun, ...) started this run's processes."""
        environment = self._strategy.cluster_environment
        return environment is not None and environment.creates_processes_externally

    def _validate_launched(self) -> None:
        if not self._launched and self._strategy.launcher is not None and not self._processes_started_outside():
            processes = max(len(self._strategy.parallel_devices), 1) * self._strategy.num_nodes
            raise RuntimeError(
                f"{type(self._strategy).__name__} runs {processes} processes, but fabric.launch() was not "
                "called. Call fabric.launch() before setting up models, or start the script with `fabric run`."
            )
        self._setup_environment()

    def _teardown(self, status: str = "success") -> None:
        if self._torn_down:
            return
        self._torn_down = True
        self._hooks.on_teardown(status)
        self._strategy.teardown()

    # -- setup -------------------------------------------------------------------------------

    @overload
    def setup(self, module: Module, *, move_to_device: bool = ..., _reapply_compile: bool = ...) -> Any: ...

    @overload
    def setup(
        self,
        module: Module,
        *optimizers: Optimizer,
        scheduler: Any = ...,
        move_to_device: bool = ...,
        _reapply_compile: bool = ...,
    ) -> Any: ...

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
        self._validate_setup(module, optimizers)
        self._validate_launched()
        original = module
        user_module = self._prepare_module(module, move_to_device)
        forward_module, new_optimizers, scheduler = self._hooks.setup_model(user_module, list(optimizers), scheduler)
        wrapped = self._wrap_module(forward_module, original)
        wrapped_optimizers = [FabricOptimizer(opt, self._strategy, self._hooks) for opt in new_optimizers]
        self._connect_lightning_module(wrapped.module, wrapped_optimizers)
        self._hooks.on_after_setup(wrapped)
        self.call("on_after_setup", fabric=self, module=wrapped)
        if not optimizers:
            return wrapped if scheduler is None else (wrapped, scheduler)
        outputs: list[Any] = [wrapped, *wrapped_optimizers]
        if scheduler is not None:
            outputs.append(scheduler)
        return tuple(outputs)

    def setup_module(self, module: Module, move_to_device: bool = True, _reapply_compile: bool = True) -> Any:
        """Set up a model alone (its optimizers later, with :meth:`setup_optimizers`)."""
        self._validate_setup(module, ())
        self._validate_launched()
        original = module
        user_module = self._prepare_module(module, move_to_device)
        forward_module, _, _ = self._hooks.setup_model(user_module, [], None)
        wrapped = self._wrap_module(forward_module, original)
        self._connect_lightning_module(wrapped.module, [])
        self._hooks.on_after_setup(wrapped)
        self.call("on_after_setup", fabric=self, module=wrapped)
        return wrapped

    def setup_optimizers(self, *optimizers: Optimizer) -> Any:
        """Set up optimizers for a model set up before with :meth:`setup_module`."""
        if not optimizers:
            raise ValueError("fabric.setup_optimizers() needs at least one optimizer.")
        self._validate_optimizers(optimizers)
        self._validate_launched()
        wrapped = [FabricOptimizer(self._hooks.setup_optimizer(opt), self._strategy, self._hooks) for opt in optimizers]
        return wrapped[0] if len(wrapped) == 1 else tuple(wrapped)

    def _prepare_module(self, module: Module, move_to_device: bool) -> Module:
        target = getattr(module, "_orig_mod", module)  # a torch.compile'd module: convert the inner one
        self._precision.convert_module(target)
        if move_to_device:
            self._strategy.module_to_device(target)
        return module

    def _wrap_module(self, forward_module: Module, original: Module) -> FabricModule:
        # For a compiled module, the user's model is the one inside it: its state dict has
        # no "_orig_mod." prefix.
        return FabricModule(forward_module, self._strategy, original_module=getattr(original, "_orig_mod", original))

    def _connect_lightning_module(self, module: Module, optimizers: list[FabricOptimizer]) -> None:
        """Give a LightningModule-style model this Fabric, as Lightning Fabric does (duck typed).

        A model with a ``_fabric`` attribute gets this Fabric there (its ``self.log``,
        ``self.logger`` and ``self.optimizers()`` use it) and its optimizers in
        ``_fabric_optimizers``, and becomes a callback: ``fabric.call("on_train_start")``
        reaches its ``on_*`` methods.
        """
        if not hasattr(module, "_fabric"):
            return
        # Plain attributes (nn.Module's __setattr__ would store them the same way); mypy would
        # type them as parameters or submodules.
        object.__setattr__(module, "_fabric", self)
        object.__setattr__(module, "_fabric_optimizers", optimizers)
        if not any(callback is module for callback in self._callbacks):
            self._callbacks.append(module)

    def _validate_setup(self, module: Any, optimizers: Sequence[Any]) -> None:
        if isinstance(module, (FabricOptimizer, FabricDataLoader, Optimizer)):
            raise TypeError(
                f"fabric.setup() expects a torch.nn.Module first, got {type(module).__name__}. "
                "Call it as fabric.setup(model, optimizer)."
            )
        if is_wrapped(module):
            raise ValueError(
                "This model was already set up by Fabric. Set up each model once; use the object that the "
                "first fabric.setup() returned."
            )
        if not isinstance(module, Module):
            raise TypeError(f"fabric.setup() expects a torch.nn.Module, got {type(module).__name__}.")
        self._validate_optimizers(optimizers)

    def _validate_optimizers(self, optimizers: Sequence[Any]) -> None:
        for optimizer in optimizers:
            if isinstance(optimizer, FabricOptimizer):
                raise ValueError(
                    f"The optimizer {type(optimizer.optimizer).__name__} was already set up by Fabric. Set up each "
                    "optimizer once."
                )
            if not isinstance(optimizer, Optimizer):
                raise TypeError(
                    f"Expected torch.optim.Optimizer instances after the model, got {type(optimizer).__name__}. "
                    "Pass a learning-rate scheduler as scheduler=..."
                )

    def setup_dataloaders(
        self, *dataloaders: DataLoader, use_distributed_sampler: bool = True, move_to_device: bool = True
    ) -> Any:
        """Wrap dataloaders so that batches land on the device and epochs advance the sampler.

        :return: one wrapped dataloader, or a tuple of them.
        """
        if not dataloaders:
            raise ValueError("fabric.setup_dataloaders() needs at least one dataloader.")
        wrapped = []
        for dataloader in dataloaders:
            if isinstance(dataloader, FabricDataLoader):
                raise ValueError("This dataloader was already set up by Fabric. Set up each dataloader once.")
            if not isinstance(dataloader, DataLoader):
                raise TypeError(
                    f"fabric.setup_dataloaders() expects torch.utils.data.DataLoader objects, got "
                    f"{type(dataloader).__name__}. Wrap the data in one (DataLoader(dataset, batch_size=...)), or "
                    "iterate it yourself and move batches with fabric.to_device()."
                )
            seeding = os.environ.get("PL_SEED_WORKERS") == "1"
            if seeding and dataloader.worker_init_fn is None:
                dataloader.worker_init_fn = _seeded_worker_init(self.global_rank)
            processed = self._strategy.process_dataloader(dataloader)
            sampler_kwargs = self._strategy.distributed_sampler_kwargs
            if use_distributed_sampler and sampler_kwargs is not None:
                processed = distribute_dataloader(processed, **sampler_kwargs)
            device = self.device if move_to_device else None
            wrapped.append(FabricDataLoader(processed, device=device, strategy=self._strategy))
        return wrapped[0] if len(wrapped) == 1 else tuple(wrapped)

    # -- training step -------------------------------------------------------------------------

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
        if (clip_val is None) == (max_norm is None):
            raise ValueError(
                "fabric.clip_gradients() needs exactly one of clip_val (clip each gradient value) or max_norm "
                "(clip the total norm)."
            )
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

    # -- creation contexts -------------------------------------------------------------------

    def init_module(self, empty_init: bool | None = None) -> AbstractContextManager:
        """Create a model directly on the device, in the precision's dtype.

        :param empty_init: skip weight initialisation (the weights will be loaded anyway).
        """
        self._validate_launched()
        return self._strategy.module_init_context(empty_init=empty_init)

    def init_tensor(self) -> AbstractContextManager:
        """Create tensors directly on the device, in the precision's dtype."""
        return self._strategy.tensor_init_context()

    # -- data and devices -------------------------------------------------------------------

    def to_device(self, obj: Any) -> Any:
        """Move a module, a tensor or a collection of tensors to this process's device."""
        if isinstance(obj, Module):
            self._accelerator.setup_device(self.device)
            self._strategy.module_to_device(obj)
            return obj
        return self._strategy.batch_to_device(obj)

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

    # -- collectives -------------------------------------------------------------------------

    def barrier(self, name: str | None = None) -> None:
        """Wait until every process reaches this point."""
        self._validate_launched()
        self._strategy.barrier(name=name)

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Send a picklable object from process ``src`` to all."""
        self._validate_launched()
        return self._strategy.broadcast(obj, src=src)

    def all_gather(self, data: Any, group: Any = None, sync_grads: bool = False) -> Any:
        """Gather tensors (or collections of them) from every process, stacked on a new first dimension."""
        self._validate_launched()
        data = convert_to_tensors(data, device=self.device)
        return apply_to_collection(
            data, Tensor, lambda tensor: self._strategy.all_gather(tensor, group=group, sync_grads=sync_grads)
        )

    def all_reduce(self, data: Any, group: Any = None, reduce_op: str | Any = "mean") -> Any:
        """Reduce tensors (or collections of them) over every process; ``"mean"``, ``"sum"`` or a ReduceOp."""
        self._validate_launched()
        data = convert_to_tensors(data, device=self.device)
        return apply_to_collection(
            data, Tensor, lambda tensor: self._strategy.all_reduce(tensor, group=group, reduce_op=reduce_op)
        )

    @contextmanager
    def rank_zero_first(self, local: bool = False) -> Generator[None, None, None]:
        """Let rank 0 (per node with ``local=True``) run the block first, then the others."""
        rank = self.local_rank if local else self.global_rank
        if rank > 0:
            self.barrier("rank_zero_first")
        yield
        if rank == 0:
            self.barrier("rank_zero_first")

    # -- logging -------------------------------------------------------------------------------

    def log(self, name: str, value: Any, step: int | None = None) -> None:
        """Send one metric to every logger."""
        self.log_dict({name: value}, step=step)

    def log_dict(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Send several metrics to every logger. One-element tensors become Python numbers."""
        if not isinstance(metrics, Mapping):
            raise TypeError(f"fabric.log_dict() expects a mapping of names to values, got {type(metrics).__name__}.")
        self._hooks.log(convert_tensors_to_scalars(dict(metrics)), step)

    def call(self, hook_name: str, *args: Any, **kwargs: Any) -> None:
        """Call ``hook_name(*args, **kwargs)`` on every callback that has such a method.

        As in Lightning Fabric, each method gets only the keyword arguments it accepts (all of
        them when it takes ``**kwargs``), and an attribute of that name that is not callable
        is skipped with a warning.
        """
        for callback in self._callbacks:
            method = getattr(callback, hook_name, None)
            if method is None:
                continue
            if not callable(method):
                warnings.warn(
                    f"fabric.call({hook_name!r}) skipped {type(callback).__name__}.{hook_name}: it is not callable "
                    f"({type(method).__name__}). Rename the attribute, or make it a method.",
                    UserWarning,
                    stacklevel=2,
                )
                continue
            method(*args, **accepted_kwargs(method, kwargs))

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
        if not isinstance(state, dict):
            raise TypeError(f"fabric.save(path, state): state must be a dict, got {type(state).__name__}.")
        if filter is not None:
            if not isinstance(filter, dict):
                raise TypeError(f"fabric.save(filter=...) expects a dict of key to function, got {filter!r}.")
            unknown = sorted(set(filter) - set(state))
            if unknown:
                raise ValueError(f"fabric.save(filter=...) names keys {unknown} that are not in state {sorted(state)}.")
            for key, function in filter.items():
                if not callable(function):
                    raise TypeError(f"fabric.save(filter={{{key!r}: ...}}): expected a function, got {function!r}.")
                value = unwrap_for_checkpoint(state[key])
                if not isinstance(value, (Module, Optimizer, dict)) and not is_stateful(value):
                    warnings.warn(
                        f"fabric.save(filter={{{key!r}: ...}}) is ignored: a filter chooses entries of a state "
                        f"dict, but state[{key!r}] is a plain {type(value).__name__}, so it is saved whole. Remove "
                        f"{key!r} from the filter to silence this.",
                        UserWarning,
                        stacklevel=2,
                    )
        self._validate_launched()
        self._hooks.save_checkpoint(Path(path), _unwrap_state(state), filter)
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
        if state is not None and not isinstance(state, dict):
            raise TypeError(
                f"fabric.load(path, state): state must be a dict, got {type(state).__name__}. For a bare model or "
                "optimizer state dict use fabric.load_raw(path, obj)."
            )
        self._validate_launched()
        unwrapped = _unwrap_state(state) if state is not None else None
        remainder = self._hooks.load_checkpoint(Path(path), unwrapped, strict, weights_only is not False)
        self.barrier("load")
        if state is not None and unwrapped is not None:
            # Plain values were replaced in the unwrapped copy; give them back to the caller's dict.
            for key, value in unwrapped.items():
                if not is_wrapped(state[key]):
                    state[key] = value
        self._hooks.on_load_checkpoint(Path(path), remainder)
        return remainder

    def load_raw(
        self, path: str | Path, obj: Module | Optimizer, strict: bool = True, weights_only: bool | None = None
    ) -> None:
        """Load a bare state dict saved with ``torch.save(model.state_dict())`` into ``obj``.

        It goes through the strategy's ``fabric_load_checkpoint`` and fires
        ``fabric_on_load_checkpoint``, as :meth:`load` does. ``weights_only`` as in :meth:`load`.
        """
        target = unwrap(obj)
        if not isinstance(target, (Module, Optimizer)):
            raise TypeError(
                f"fabric.load_raw(path, obj): obj must be a model or an optimizer, got {type(obj).__name__}."
            )
        self._validate_launched()
        self._hooks.load_checkpoint(Path(path), target, strict, weights_only is not False)  # type: ignore[arg-type]
        self._hooks.on_load_checkpoint(Path(path), {})

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


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _in_interactive_session() -> bool:
    import __main__

    return not hasattr(__main__, "__file__")


def _unwrap_state(state: dict[str, Any]) -> dict[str, Any]:
    # A set-up dataloader stays wrapped: the wrapper holds the data position.
    return {key: unwrap_for_checkpoint(value) for key, value in state.items()}


def _seeded_worker_init(rank: int) -> Callable[[int], None]:
    # A partial, not a closure: it must pickle for workers started with "spawn".
    return functools.partial(worker_init_function, rank=rank)


def _teardown_at_exit(fabric: Fabric) -> None:
    # A strong reference on purpose: a Fabric made inside a function must still flush its
    # loggers and release its processes when the interpreter exits.
    try:
        fabric._teardown("failed" if _errors.state["failed"] else "success")
    except Exception as err:  # at exit, a failing teardown must not hide the real outcome
        _log.warning("teardown at exit failed", error=repr(err))
