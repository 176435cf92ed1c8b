"""``ShardedStrategy``: what FSDP and model parallel share, on top of DDP's process steps.

Both run one process per device like DDP (launcher, ranks, process group: see
:mod:`~fabric_core.strategies.ddp`), then differ in two steps only, which each subclass
supplies:

* :meth:`ShardedStrategy.build_device_mesh`: after the process group, the mesh
  (:mod:`~fabric_core.strategies.mesh`);
* ``setup_module``: shard the model on it (FSDP: :mod:`~fabric_core.strategies.sharding`;
  model parallel: the user's ``parallelize_fn``).

Everything after that is here, the same for both: an optimizer made before sharding is
re-pointed at the sharded parameters (:mod:`~fabric_core.strategies.optimizer_repointing`),
a model built on the meta device is materialized, gradient norms are DTensor-aware, and
checkpoints are DCP directories (``state_dict_type="sharded"``) or one file (``"full"``),
see :mod:`~fabric_core.strategies.sharded_checkpoint`.
"""

from __future__ import annotations

import weakref
from abc import abstractmethod
from contextlib import AbstractContextManager, ExitStack
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn import Module
from torch.optim import Optimizer

from fabric_core.strategies import optimizer_repointing, sharded_checkpoint, sharding
from fabric_core.strategies.ddp import DDPStrategy


class ShardedStrategy(DDPStrategy):
    """A DDP-launched strategy whose model is sharded over a device mesh (FSDP2 / DTensor).

    :param state_dict_type: ``"sharded"`` (a DCP directory, loadable at any world size) or
        ``"full"`` (one file written by rank 0).
    :param cpu_offload: keep sharded parameters (and what follows them) on the CPU.
    """

    def __init__(
        self,
        *,
        state_dict_type: str = "sharded",
        cpu_offload: bool = False,
        accelerator: Any = None,
        parallel_devices: list[torch.device] | None = None,
        cluster_environment: Any = None,
        checkpoint_io: Any = None,
        precision: Any = None,
        process_group_backend: str | None = None,
        timeout: timedelta | None = dist.default_pg_timeout,
        start_method: str = "popen",
        checkpoint_sync_timeout: timedelta = timedelta(seconds=120),
    ) -> None:
        super().__init__(
            accelerator=accelerator,
            parallel_devices=parallel_devices,
            cluster_environment=cluster_environment,
            checkpoint_io=checkpoint_io,
            precision=precision,
            process_group_backend=process_group_backend,
            timeout=timeout,
            start_method=start_method,
            checkpoint_sync_timeout=checkpoint_sync_timeout,
        )
        self.state_dict_type = state_dict_type
        self.cpu_offload = cpu_offload
        self.device_mesh: Any = None
        self._set_up_modules: weakref.WeakSet[Module] = weakref.WeakSet()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_set_up_modules"] = None  # weak sets do not pickle (spawned processes)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._set_up_modules = weakref.WeakSet()

    # -- the two steps a sharded strategy supplies --------------------------------------------------

    @abstractmethod
    def build_device_mesh(self) -> Any:
        """The device mesh of this run, built once the process group exists."""

    @abstractmethod
    def setup_module(self, module: Module) -> Module:
        """Shard ``module`` over :attr:`device_mesh` (and materialize it when built on the meta device)."""

    # -- environment ---------------------------------------------------------------------------

    def setup_environment(self) -> None:
        super().setup_environment()  # ranks, device, process group (DDP's steps)
        self.device_mesh = self.build_device_mesh()

    # -- models ------------------------------------------------------------------------------------

    def materialize(self, module: Module) -> None:
        """Give a model built on the meta device real storage: on the CPU with ``cpu_offload``, else the device."""
        sharding.materialize(module, torch.device("cpu") if self.cpu_offload else self.root_device)

    def module_to_device(self, module: Module) -> None:
        # Sharding moves each shard to its device; a meta model is materialized there.
        if self.cpu_offload or any(p.is_meta for p in module.parameters()):
            return
        module.to(self.root_device)

    def setup_module_and_optimizers(
        self, module: Module, optimizers: list[Optimizer], scheduler: Any = None
    ) -> tuple[Module, list[Optimizer], Any]:
        order = optimizer_repointing.parameter_names(module, optimizers)
        module = self.setup_module(module)
        self._set_up_modules.add(module)
        optimizer_repointing.repoint(module, optimizers, order)
        return module, optimizers, scheduler

    def setup_optimizer(self, optimizer: Optimizer) -> Optimizer:
        optimizer_repointing.check_owned(optimizer, self._set_up_modules)
        return optimizer

    def module_init_context(self, empty_init: bool | None = None) -> AbstractContextManager:
        if not empty_init:
            return super().module_init_context(empty_init)
        # Build on the meta device: no memory until setup shards and materializes it.
        stack = ExitStack()
        stack.enter_context(self.precision.module_init_context())
        stack.enter_context(torch.device("meta"))
        return stack

    def clip_gradients_norm(
        self,
        module: Module,
        optimizer: Optimizer,
        max_norm: float | int,
        norm_type: float | int = 2.0,
        error_if_nonfinite: bool = True,
    ) -> Tensor:
        norm = super().clip_gradients_norm(module, optimizer, max_norm, norm_type, error_if_nonfinite)
        full_tensor = getattr(norm, "full_tensor", None)  # a DTensor: the norm over every shard
        return full_tensor() if callable(full_tensor) else norm

    # -- checkpoints -------------------------------------------------------------------------------

    def save_checkpoint(
        self, path: Any, state: dict[str, Any], filter: dict[str, Any] | None = None, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__}.save_checkpoint(storage_options={storage_options!r}): sharded checkpoints "
                "take no storage options (at a URL, fsspec reads the store's credentials from its usual "
                "configuration: environment variables, config files). Drop the argument."
            )
        path = sharded_checkpoint.target_path(path, f"fabric.save({str(path)!r})")
        self.ensure_every_rank_saves(path)
        sharded_checkpoint.check_target(path)
        if self.state_dict_type == "sharded":
            sharded_checkpoint.save_sharded(
                path, state, filter, lambda: self.barrier("fabric.save"), type(self).__name__
            )
            return
        checkpoint = sharded_checkpoint.full_state(state, filter)  # a collective: every rank takes part
        if self.is_global_zero:
            sharded_checkpoint.write_full(self.checkpoint_io, checkpoint, path)

    def load_checkpoint(
        self,
        path: Any,
        state: dict[str, Any] | Module | Optimizer | None = None,
        strict: bool = True,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        weights_only = weights_only is not False
        path = sharded_checkpoint.prepare_load(path, self)  # a save that crashed mid-swap: recovered, or named
        if isinstance(state, (Module, Optimizer)):
            state = {"__raw__": state}
            raw = True
        else:
            raw = False
        if sharded_checkpoint.is_sharded_checkpoint(path):
            if raw:
                raise ValueError(
                    f"fabric.load_raw({str(path)!r}) expects one file with a bare state dict, but this is a sharded "
                    "checkpoint directory. Use fabric.load(path, {'model': model}) instead."
                )
            return sharded_checkpoint.load_sharded(path, state, strict, weights_only)
        checkpoint = self.checkpoint_io.load_checkpoint(path, weights_only=weights_only)
        if state is None:
            return checkpoint
        if raw:
            checkpoint = {"__raw__": checkpoint}
        return sharded_checkpoint.load_full_into(checkpoint, state, strict, path)

    def get_module_state_dict(self, module: Module) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
