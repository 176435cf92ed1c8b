"""The strategy interface, and the hook implementations every strategy answers.

The strategy is the single owner of the behaviour hooks (setup, backward, optimizer step,
checkpoints). It answers them through the ``fabric_*`` methods below, which call the plain
methods a subclass overrides (``setup_module``, ``backward``, ...), so a subclass never
needs to re-declare a hook implementation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.nn import Module
from torch.optim import Optimizer

from fabric_core.checkpoint_io import CheckpointIO
from fabric_core.hookspecs import hookimpl
from fabric_core.precision.precision import Precision
from fabric_core.strategies._empty_init import EmptyInit
from fabric_core.strategies.checkpoint_state import (
    apply_filter,
    is_stateful,
    load_file,
    save_file,
    warn_if_no_entry_matched,
)
from fabric_core.utilities.rank_zero import rank_zero_warn

if TYPE_CHECKING:
    from fabric_core.accelerators.accelerator import Accelerator
    from fabric_core.environments.cluster_environment import ClusterEnvironment


__all__ = ["Strategy", "is_stateful"]


class Strategy(ABC):
    """Owns how a run is laid out over devices and composes the run's components.

    :param accelerator: set by Fabric's connector when not given.
    :param checkpoint_io: how files are written; :class:`CheckpointIO` when not given.
    :param precision: set by the connector when not given.
    """

    def __init__(
        self,
        accelerator: Accelerator | None = None,
        checkpoint_io: CheckpointIO | None = None,
        precision: Precision | None = None,
    ) -> None:
        self.accelerator: Accelerator | None = accelerator
        self._checkpoint_io = checkpoint_io
        self._precision = precision
        self.cluster_environment: ClusterEnvironment | None = None
        self.parallel_devices: list[torch.device] = []
        self.num_nodes = 1
        #: starts the other processes; ``None`` for strategies that run in this process only
        self.launcher: Any = None

    # -- composition -----------------------------------------------------------------

    @property
    def precision(self) -> Precision:
        if self._precision is None:
            self._precision = Precision()
        return self._precision

    @precision.setter
    def precision(self, precision: Precision) -> None:
        self._precision = precision

    @property
    def checkpoint_io(self) -> CheckpointIO:
        if self._checkpoint_io is None:
            self._checkpoint_io = CheckpointIO()
        return self._checkpoint_io

    @checkpoint_io.setter
    def checkpoint_io(self, io: CheckpointIO) -> None:
        self._checkpoint_io = io

    def connect(
        self,
        *,
        accelerator: Accelerator,
        precision: Precision,
        cluster_environment: ClusterEnvironment,
        parallel_devices: list[torch.device],
        num_nodes: int,
        checkpoint_io: CheckpointIO | None,
    ) -> None:
        """Called once by the connector: fill in what the user did not set on this instance."""
        if self.accelerator is None:
            self.accelerator = accelerator
        if self._precision is None:
            self._precision = precision
        if self._checkpoint_io is None and checkpoint_io is not None:
            self._checkpoint_io = checkpoint_io
        if self.cluster_environment is None:
            self.cluster_environment = cluster_environment
        if not self.parallel_devices:
            self.parallel_devices = parallel_devices
        self.num_nodes = num_nodes

    def validate(self) -> None:
        """Raise when the connected components cannot work together."""

    def configure_launcher(self) -> None:
        """Set :attr:`launcher` once the environment is known (multi-process strategies)."""

    @property
    def distributed_sampler_kwargs(self) -> dict[str, int] | None:
        """``num_replicas`` and ``rank`` for splitting data, or ``None`` when every process sees it all."""
        return None

    # -- where this process stands ------------------------------------------------------

    @property
    @abstractmethod
    def root_device(self) -> torch.device:
        """The device this process computes on."""

    @property
    def global_rank(self) -> int:
        return 0

    @property
    def local_rank(self) -> int:
        return 0

    @property
    def node_rank(self) -> int:
        return 0

    @property
    def world_size(self) -> int:
        return 1

    @property
    def is_global_zero(self) -> bool:
        return self.global_rank == 0

    def setup_environment(self) -> None:
        """Prepare this process (device, process group); runs once, at launch or first setup."""
        assert self.accelerator is not None
        self.accelerator.setup_device(self.root_device)

    # -- models, optimizers, data --------------------------------------------------------

    def setup_module_and_optimizers(
        self, module: Module, optimizers: list[Optimizer], scheduler: Any = None
    ) -> tuple[Module, list[Optimizer], Any]:
        """Set up a model and its optimizers together (strategies that shard need both)."""
        module = self.setup_module(module)
        return module, [self.setup_optimizer(optimizer) for optimizer in optimizers], scheduler

    def setup_module(self, module: Module) -> Module:
        """Wrap or shard ``module`` for this strategy; the default returns it unchanged."""
        return module

    def setup_optimizer(self, optimizer: Optimizer) -> Optimizer:
        return optimizer

    def module_to_device(self, module: Module) -> None:
        module.to(self.root_device)

    def module_init_context(self, empty_init: bool | None = None) -> AbstractContextManager:
        """Where ``fabric.init_module()`` creates models: right device, dtype, optionally no init."""
        stack = ExitStack()
        if empty_init:
            stack.enter_context(EmptyInit())
        stack.enter_context(self.precision.module_init_context())
        stack.enter_context(self.root_device)
        return stack

    def tensor_init_context(self) -> AbstractContextManager:
        stack = ExitStack()
        stack.enter_context(self.precision.tensor_init_context())
        stack.enter_context(self.root_device)
        return stack

    def process_dataloader(self, dataloader: Any) -> Any:
        return dataloader

    def batch_to_device(self, batch: Any, device: torch.device | None = None) -> Any:
        from fabric_core.utilities.apply_func import move_data_to_device

        return move_data_to_device(batch, device or self.root_device)

    def batches_to_device(self, batches: Iterable[Any], device: torch.device) -> Iterable[Any]:
        """The batches of a dataloader set up by Fabric, on ``device``: what ``FabricDataLoader`` yields.

        One :meth:`batch_to_device` per batch here; a backend with a device loader of its own
        returns that instead (fabric-xla: torch_xla's parallel loader, ``MpDeviceLoader``).
        """
        return (self.batch_to_device(batch, device) for batch in batches)

    #: ``True`` when the model must be called through what :meth:`setup_module` returned
    #: (its forward syncs gradients or gathers parameters): Fabric then refuses calls of the
    #: model's other methods that would skip it. A strategy that returns a wrapper other
    #: than the model itself gets the same protection without setting this.
    requires_forward_path: bool = False

    #: a context manager factory ``(module, enabled) -> context`` skipping gradient sync,
    #: or ``None`` when this strategy never syncs gradients
    backward_sync_control: Callable[[Module, bool], AbstractContextManager] | None = None

    # -- training step --------------------------------------------------------------------

    def backward(self, tensor: Tensor, module: Module | None, *args: Any, **kwargs: Any) -> None:
        precision = self.precision
        if not precision.has_backward_hooks:
            precision.backward(tensor, module, *args, **kwargs)
            return
        # A precision written for Lightning's interface: its hooks around backward run too.
        tensor = precision.pre_backward(tensor, module)
        precision.backward(tensor, module, *args, **kwargs)
        precision.post_backward(tensor, module)

    def optimizer_step(self, optimizer: Optimizer, **kwargs: Any) -> Any:
        return self.precision.optimizer_step(optimizer, **kwargs)

    def clip_gradients_norm(
        self,
        module: Module,
        optimizer: Optimizer,
        max_norm: float | int,
        norm_type: float | int = 2.0,
        error_if_nonfinite: bool = True,
    ) -> Tensor:
        self.precision.unscale_gradients(optimizer)
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        return torch.nn.utils.clip_grad_norm_(
            parameters, max_norm=max_norm, norm_type=norm_type, error_if_nonfinite=error_if_nonfinite
        )

    def clip_gradients_value(self, module: Module, optimizer: Optimizer, clip_val: float | int) -> None:
        self.precision.unscale_gradients(optimizer)
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_value_(parameters, clip_value=clip_val)

    # -- collectives (one process: identities) --------------------------------------------

    def barrier(self, name: str | None = None) -> None:
        """Wait for every process; one process has nobody to wait for."""

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        return obj

    def all_gather(self, tensor: Tensor, group: Any = None, sync_grads: bool = False) -> Tensor:
        return tensor

    def all_reduce(self, tensor: Tensor, group: Any = None, reduce_op: Any = "mean") -> Tensor:
        return tensor

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        return decision

    # -- checkpoints ------------------------------------------------------------------------

    def get_module_state_dict(self, module: Module) -> dict[str, Any]:
        return module.state_dict()

    def load_module_state_dict(self, module: Module, state_dict: dict[str, Any], strict: bool = True) -> None:
        module.load_state_dict(state_dict, strict=strict)
        if not strict:
            warn_if_no_entry_matched(module, module.state_dict(), state_dict)

    def get_optimizer_state(self, optimizer: Optimizer) -> dict[str, Any]:
        return optimizer.state_dict()

    def convert_state(self, state: dict[str, Any], filter: dict[str, Any] | None = None) -> dict[str, Any]:
        """Live objects become state dicts; ``filter`` chooses entries per top-level key."""
        converted: dict[str, Any] = {}
        for key, obj in state.items():
            if isinstance(obj, Module):
                value: Any = self.get_module_state_dict(obj)
            elif isinstance(obj, Optimizer):
                value = self.get_optimizer_state(obj)
            elif is_stateful(obj):
                value = obj.state_dict()
            else:
                value = obj
            converted[key] = apply_filter(key, value, filter)
        return converted

    def save_checkpoint(
        self,
        path: str | Path,
        state: dict[str, Any],
        filter: dict[str, Any] | None = None,
        storage_options: Any = None,
    ) -> None:
        """Write ``state`` to one file; only global rank 0 writes (see ``checkpoint_state.save_file``).

        :param storage_options: passed on to the checkpoint IO (Lightning's argument).
        """
        save_file(self, path, state, filter, storage_options)

    def load_checkpoint(
        self,
        path: str | Path,
        state: dict[str, Any] | Module | Optimizer | None = None,
        strict: bool = True,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Restore the live objects in ``state`` from ``path``; return what was not requested.

        :param weights_only: ``None`` (the default) and ``True`` load with
            ``torch.load(weights_only=True)``; ``False`` unpickles anything (trusted files only).
        """
        return load_file(self, path, state, strict, weights_only)

    def recover_checkpoint(self, path: str | Path) -> None:
        """Before a load: if ``path`` is missing because a save crashed mid-swap, put its newest complete copy back.

        Global rank 0 renames (see :func:`fabric_core.strategies.staging.recover`) and warns;
        every rank waits for it, so every rank must call it. A strategy or add-on whose saves
        swap directories in (two renames) calls this first in its collective load; a single
        file is replaced in one atomic rename and never needs it.
        """
        from fabric_core.utilities.remote_paths import refuse_remote

        refuse_remote(
            path,
            f"fabric.load({str(path)!r}) with {type(self).__name__}",
            "Copy the checkpoint to a local or mounted path and load it from there.",
        )
        path = Path(path)
        if self.is_global_zero:
            from fabric_core.strategies import staging

            recovered = staging.recover(path)
            if recovered is not None:
                rank_zero_warn(
                    f"fabric.load({str(path)!r}): the checkpoint was missing because a save was interrupted while "
                    f"swapping it in; the newest complete copy, {recovered.name!r}, was put back in its place.",
                    category=UserWarning,
                )
        self.barrier("fabric.load.recover")

    def teardown(self) -> None:
        """Release devices and files at the end of a run."""
        if self.accelerator is not None:
            self.accelerator.teardown()
        if self.cluster_environment is not None:
            self.cluster_environment.teardown()
        self.checkpoint_io.teardown()

    # -- the hook implementations (the strategy is their single owner) --------------------

    @hookimpl
    def fabric_setup_model(
        self, module: Module, optimizers: list[Optimizer], scheduler: Any
    ) -> tuple[Module, list[Optimizer], Any]:
        return self.setup_module_and_optimizers(module, optimizers, scheduler)

    @hookimpl
    def fabric_setup_optimizer(self, optimizer: Optimizer) -> Optimizer:
        return self.setup_optimizer(optimizer)

    @hookimpl
    def fabric_backward(self, tensor: Tensor, module: Module | None, args: tuple, kwargs: dict) -> bool:
        self.backward(tensor, module, *args, **kwargs)
        return True

    @hookimpl
    def fabric_optimizer_step(self, optimizer: Optimizer, kwargs: dict) -> Any:
        return self.optimizer_step(optimizer, **kwargs)

    @hookimpl
    def fabric_save_checkpoint(self, path: str | Path, state: dict[str, Any], filter: dict[str, Any] | None) -> bool:
        self.save_checkpoint(path, state, filter=filter)
        return True

    @hookimpl
    def fabric_load_checkpoint(
        self, path: str | Path, state: dict[str, Any] | None, strict: bool, weights_only: bool
    ) -> dict[str, Any]:
        return self.load_checkpoint(path, state, strict=strict, weights_only=weights_only)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(accelerator={self.accelerator!r}, precision={self._precision!r})"
