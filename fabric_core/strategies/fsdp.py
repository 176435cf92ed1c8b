"""Fully sharded data parallel training on FSDP2 (``torch.distributed.fsdp.fully_shard``).

Parameters, gradients and optimizer state are sharded over the processes; each layer's
parameters are gathered just before it runs and freed after. The steps, in order:

1. ``setup_environment`` starts the process group (as DDP does) and builds the device mesh:
   1-D over all ranks, or 2-D ``(replicate, shard)`` for hybrid sharding.
2. ``setup_module`` applies activation checkpointing, then ``fully_shard`` to each
   submodule the wrap policy picks, then to the root; a model built on the meta device
   (``init_module(empty_init=True)``) is materialized shard by shard.
3. An optimizer made before sharding is re-pointed at the sharded parameters by name, so
   ``fabric.setup(model, optimizer)`` works as well as ``setup_module`` + ``setup_optimizers``.
   ``setup_optimizers`` refuses an optimizer holding parameters of no model set up here
   (made from the model before ``setup_module`` replaced its parameters, say): it would
   silently never train.
4. Checkpoints are DCP directories (``state_dict_type="sharded"``) or one file
   (``"full"``); see :mod:`fabric_core.strategies.sharded_checkpoint`.

``"16-mixed"`` keeps the precision's ``torch.amp.GradScaler``: with FSDP2 the gradients are
DTensors, and DTensor's handler for the scaler's inf check reduces ``found_inf`` over the
shards, so an inf in one rank's shard skips the step on every rank (what
``ShardedGradScaler`` did for FSDP1).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn import Module
from torch.optim import Optimizer

from fabric_core.strategies import sharded_checkpoint
from fabric_core.strategies.ddp import DDPStrategy

_CHECKPOINT_PREFIX = "_checkpoint_wrapped_module."
_SHARDING = ("FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD", "NO_SHARD")
_HALF = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16, "16-true": torch.float16, "bf16-true": torch.bfloat16}


def _as_policy(policy: Any, argument: str) -> Callable[[Module], bool] | None:
    if policy is None:
        return None
    if isinstance(policy, (set, frozenset, list, tuple)):
        classes = tuple(policy)
        if not all(isinstance(cls, type) and issubclass(cls, Module) for cls in classes):
            raise TypeError(f"FSDPStrategy({argument}=...): expected a set of nn.Module classes, got {policy!r}.")
        return lambda module: isinstance(module, classes)
    if callable(policy):
        return policy  # type: ignore[no-any-return]
    raise TypeError(
        f"FSDPStrategy({argument}={policy!r}): expected a set of nn.Module classes or a function (module) -> bool."
    )


class FSDPStrategy(DDPStrategy):
    """Shard a model over processes with FSDP2.

    :param auto_wrap_policy: which submodules become their own shard unit: a set of module
        classes (``{TransformerBlock}``) or a function ``(module) -> bool``. The root is
        always sharded.
    :param activation_checkpointing_policy: module classes whose activations are recomputed
        in backward instead of stored.
    :param cpu_offload: keep sharded parameters, gradients and optimizer state on the CPU.
    :param sharding_strategy: ``"FULL_SHARD"`` (reshard after forward), ``"SHARD_GRAD_OP"``
        (keep parameters gathered between forward and backward), ``"HYBRID_SHARD"`` (shard
        within a node, replicate across nodes) or ``"NO_SHARD"`` (replicate only).
    :param device_mesh: ``(replicas, shards)`` for hybrid sharding; by default
        ``(num_nodes, devices)``.
    :param state_dict_type: ``"sharded"`` (a DCP directory, loadable at any world size) or
        ``"full"`` (one file written by rank 0).
    :param kwargs: other ``fully_shard`` keyword arguments, and DDPStrategy's (``timeout``,
        ``start_method``, ``process_group_backend``).
    """

    def __init__(
        self,
        auto_wrap_policy: Any = None,
        activation_checkpointing_policy: Any = None,
        cpu_offload: bool = False,
        sharding_strategy: str = "FULL_SHARD",
        device_mesh: tuple[int, int] | None = None,
        state_dict_type: str = "sharded",
        timeout: timedelta | None = dist.default_pg_timeout,
        start_method: str = "popen",
        process_group_backend: str | None = None,
        **kwargs: Any,
    ) -> None:
        fully_shard_keys = {"reshard_after_forward", "shard_placement_fn", "mp_policy", "offload_policy"}
        unknown = sorted(
            set(kwargs)
            - fully_shard_keys
            - {
                "accelerator",
                "parallel_devices",
                "cluster_environment",
                "checkpoint_io",
                "precision",
                "checkpoint_sync_timeout",
            }
        )
        if unknown:
            raise TypeError(f"FSDPStrategy got unknown arguments {unknown}.")
        self._fully_shard_kwargs = {key: kwargs.pop(key) for key in list(kwargs) if key in fully_shard_keys}
        super().__init__(
            timeout=timeout, start_method=start_method, process_group_backend=process_group_backend, **kwargs
        )
        sharding = sharding_strategy.upper()
        if sharding not in _SHARDING:
            raise ValueError(
                f"FSDPStrategy(sharding_strategy={sharding_strategy!r}): expected one of {list(_SHARDING)}."
            )
        if state_dict_type not in ("sharded", "full"):
            raise ValueError(f"FSDPStrategy(state_dict_type={state_dict_type!r}): expected 'sharded' or 'full'.")
        self.sharding_strategy = sharding
        self.state_dict_type = state_dict_type
        self.cpu_offload = cpu_offload
        self._wrap_policy = _as_policy(auto_wrap_policy, "auto_wrap_policy")
        self._checkpoint_policy = _as_policy(activation_checkpointing_policy, "activation_checkpointing_policy")
        self._mesh_shape = device_mesh
        self.device_mesh: Any = None
        self._set_up_modules: weakref.WeakSet[Module] = weakref.WeakSet()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_set_up_modules"] = None  # weak sets do not pickle (spawned processes)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._set_up_modules = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"FSDPStrategy(sharding_strategy={self.sharding_strategy!r}, state_dict_type={self.state_dict_type!r})"

    # -- environment ---------------------------------------------------------------------------

    def setup_environment(self) -> None:
        super().setup_environment()
        from torch.distributed.device_mesh import init_device_mesh

        device_type = self.root_device.type
        if self.sharding_strategy == "HYBRID_SHARD":
            shape = self._mesh_shape or (self.num_nodes, self.num_processes)
            if shape[0] * shape[1] != self.world_size:
                raise ValueError(
                    f"FSDPStrategy(device_mesh={shape}) needs {shape[0] * shape[1]} processes, but the run has "
                    f"{self.world_size}. Choose (replicas, shards) whose product is the world size."
                )
            self.device_mesh = init_device_mesh(device_type, shape, mesh_dim_names=("replicate", "shard"))
        elif self.sharding_strategy == "NO_SHARD":
            self.device_mesh = init_device_mesh(
                device_type, (self.world_size, 1), mesh_dim_names=("replicate", "shard")
            )
        else:
            self.device_mesh = init_device_mesh(device_type, (self.world_size,), mesh_dim_names=("shard",))

    # -- models ------------------------------------------------------------------------------------

    def _fully_shard_options(self) -> dict[str, Any]:
        from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy

        options: dict[str, Any] = {"mesh": self.device_mesh}
        options["reshard_after_forward"] = self.sharding_strategy != "SHARD_GRAD_OP"
        name = self.precision.precision
        if name in _HALF:
            half = _HALF[name]
            # Mixed: float32 parameters (autocast does the low-precision math), low-precision
            # gradient reduction. True: everything in the low-precision dtype.
            param_dtype = half if name.endswith("-true") else None
            options["mp_policy"] = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=half)
        if self.cpu_offload:
            # Pinned memory needs an accelerator; a CPU-only run has none to pin for.
            options["offload_policy"] = CPUOffloadPolicy(pin_memory=self.root_device.type != "cpu")
        options.update(self._fully_shard_kwargs)
        return options

    def setup_module(self, module: Module) -> Module:
        from torch.distributed.fsdp import FSDPModule, fully_shard

        if self.device_mesh is None:
            raise RuntimeError(
                "FSDPStrategy.setup_module() ran before setup_environment(); call fabric.launch() first."
            )
        if isinstance(module, FSDPModule):
            return module  # the user sharded it already
        if self._checkpoint_policy is not None:
            from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing

            apply_activation_checkpointing(module, check_fn=self._checkpoint_policy)
        options = self._fully_shard_options()
        if self._wrap_policy is not None:
            # Children first: fully_shard on a parent groups whatever its children left.
            for submodule in reversed(list(module.modules())):
                if submodule is not module and self._wrap_policy(submodule):
                    fully_shard(submodule, **options)
        fully_shard(module, **options)
        self._materialize(module)
        return module

    def _materialize(self, module: Module) -> None:
        """Give a model built on the meta device real (sharded) storage and initial values."""
        if not any(t.is_meta for t in [*module.parameters(), *module.buffers()]):
            return
        device = torch.device("cpu") if self.cpu_offload else self.root_device
        module.to_empty(device=device)
        with torch.no_grad():
            for submodule in module.modules():
                reset = getattr(submodule, "reset_parameters", None)
                if callable(reset):
                    reset()

    def module_to_device(self, module: Module) -> None:
        # fully_shard moves each shard to its device; a meta model is materialized there.
        if self.cpu_offload or any(p.is_meta for p in module.parameters()):
            return
        module.to(self.root_device)

    def setup_module_and_optimizers(
        self, module: Module, optimizers: list[Optimizer], scheduler: Any = None
    ) -> tuple[Module, list[Optimizer], Any]:
        names = {id(p): name for name, p in module.named_parameters()}
        for optimizer in optimizers:
            if optimizer.state:
                raise RuntimeError(
                    f"The {type(optimizer).__name__} passed to fabric.setup() has already stepped, so its state "
                    "cannot follow the parameters into their shards. Create the optimizer fresh, or set up the "
                    "model first (fabric.setup_module) and create the optimizer from its parameters."
                )
            for group in optimizer.param_groups:
                unknown = [p for p in group["params"] if id(p) not in names]
                if unknown:
                    raise ValueError(
                        f"The {type(optimizer).__name__} passed to fabric.setup() holds {len(unknown)} parameter(s) "
                        "that are not in the model set up with it. With FSDP, set up each model with its own "
                        "optimizer."
                    )
        order = [
            [names[id(p)] for p in group["params"]] for optimizer in optimizers for group in optimizer.param_groups
        ]
        module = self.setup_module(module)
        self._set_up_modules.add(module)
        # Activation checkpointing inserts a wrapper level into the names; compare without it.
        sharded = {name.replace(_CHECKPOINT_PREFIX, ""): p for name, p in module.named_parameters()}
        groups = [group for optimizer in optimizers for group in optimizer.param_groups]
        for group, group_names in zip(groups, order, strict=True):
            group["params"] = [sharded[name] for name in group_names]
        return module, optimizers, scheduler

    def setup_optimizer(self, optimizer: Optimizer) -> Optimizer:
        known = {id(p) for module in self._set_up_modules for p in module.parameters()}
        foreign = [p for group in optimizer.param_groups for p in group["params"] if id(p) not in known]
        if foreign:
            raise ValueError(
                f"The {type(optimizer).__name__} passed to fabric.setup_optimizers() holds {len(foreign)} "
                "parameter(s) that belong to no model set up with this strategy. Setting up a model replaces its "
                "parameters with sharded ones, so an optimizer made before would never train it. Create the "
                "optimizer from the parameters of the model that fabric.setup_module() returned, or pass both to "
                "fabric.setup(model, optimizer)."
            )
        return optimizer

    def module_init_context(self, empty_init: bool | None = None) -> AbstractContextManager:
        if not empty_init:
            return super().module_init_context(empty_init)
        # Build on the meta device: no memory until setup shards and materializes it.
        stack = ExitStack()
        stack.enter_context(self.precision.module_init_context())
        stack.enter_context(torch.device("meta"))
        return stack

    @property
    def backward_sync_control(self) -> Any:  # type: ignore[override]
        @contextmanager
        def control(module: Module, enabled: bool) -> Generator[None, None, None]:
            from torch.distributed.fsdp import FSDPModule

            if not isinstance(module, FSDPModule):
                raise TypeError(f"no_backward_sync() expected the FSDP model set up by this strategy, got {module}.")
            module.set_requires_gradient_sync(not enabled)
            try:
                yield
            finally:
                module.set_requires_gradient_sync(True)

        return control

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
                f"FSDPStrategy.save_checkpoint(storage_options={storage_options!r}): FSDP checkpoints are written to "
                "local files and take no storage options. Drop the argument."
            )
        path = Path(path)
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
        path = Path(path)
        self.recover_checkpoint(path)  # a save that crashed between its two renames left path missing
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
