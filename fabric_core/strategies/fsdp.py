"""Fully sharded data parallel training on FSDP2 (``torch.distributed.fsdp.fully_shard``).

Parameters, gradients and optimizer state are sharded over the processes; each layer's
parameters are gathered just before it runs and freed after. The steps, in order:

1. ``setup_environment``: the process group, as DDP starts it, then the device mesh
   (:func:`~fabric_core.strategies.mesh.fsdp_mesh_layout`): 1-D over all ranks, or 2-D
   ``(replicate, shard)`` for hybrid sharding;
2. ``setup_module``: :func:`~fabric_core.strategies.sharding.shard` (activation
   checkpointing, then ``fully_shard`` on each submodule the wrap policy picks, then on the
   root) and :func:`~fabric_core.strategies.sharding.materialize` for a model built on the
   meta device (``init_module(empty_init=True)``), shard by shard;
3. optimizers re-pointed at the sharded parameters by name, so ``fabric.setup(model,
   optimizer)`` works as well as ``setup_module`` + ``setup_optimizers``
   (:mod:`~fabric_core.strategies.optimizer_repointing`; shared with model parallel in
   :class:`~fabric_core.strategies.sharded.ShardedStrategy`);
4. checkpoints: DCP directories (``state_dict_type="sharded"``) or one file (``"full"``).

``"16-mixed"`` keeps the precision's ``torch.amp.GradScaler``: with FSDP2 the gradients are
DTensors, and DTensor's handler for the scaler's inf check reduces ``found_inf`` over the
shards, so an inf in one rank's shard skips the step on every rank (what
``ShardedGradScaler`` did for FSDP1).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch.nn import Module

from fabric_core.strategies import mesh, sharding
from fabric_core.strategies.sharded import ShardedStrategy

_SHARDING = ("FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD", "NO_SHARD")


class FSDPStrategy(ShardedStrategy):
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
    :param timeout, start_method, process_group_backend, checkpoint_sync_timeout: as for
        :class:`~fabric_core.strategies.ddp.DDPStrategy`.
    :param kwargs: other keyword arguments of ``torch.distributed.fsdp.fully_shard``
        (``mp_policy``, ``offload_policy``, ``shard_placement_fn``, ...), checked against
        its signature.
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
        accelerator: Any = None,
        parallel_devices: list[torch.device] | None = None,
        cluster_environment: Any = None,
        checkpoint_io: Any = None,
        precision: Any = None,
        checkpoint_sync_timeout: timedelta = timedelta(seconds=120),
        **kwargs: Any,
    ) -> None:
        sharding.check_fully_shard_arguments(kwargs)
        super().__init__(
            state_dict_type=state_dict_type,
            cpu_offload=cpu_offload,
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
        sharding_name = sharding_strategy.upper()
        if sharding_name not in _SHARDING:
            raise ValueError(
                f"FSDPStrategy(sharding_strategy={sharding_strategy!r}): expected one of {list(_SHARDING)}."
            )
        if state_dict_type not in ("sharded", "full"):
            raise ValueError(f"FSDPStrategy(state_dict_type={state_dict_type!r}): expected 'sharded' or 'full'.")
        self.sharding_strategy = sharding_name
        self._fully_shard_kwargs = kwargs
        self._wrap_policy = sharding.as_policy(auto_wrap_policy, "auto_wrap_policy")
        self._checkpoint_policy = sharding.as_policy(activation_checkpointing_policy, "activation_checkpointing_policy")
        self._mesh_shape = device_mesh

    def __repr__(self) -> str:
        return f"FSDPStrategy(sharding_strategy={self.sharding_strategy!r}, state_dict_type={self.state_dict_type!r})"

    def build_device_mesh(self) -> Any:
        shape, names = mesh.fsdp_mesh_layout(
            self.sharding_strategy, self._mesh_shape, self.world_size, self.num_nodes, self.num_processes
        )
        return mesh.build_mesh(self.root_device.type, shape, names)

    def setup_module(self, module: Module) -> Module:
        from torch.distributed.fsdp import FSDPModule

        if self.device_mesh is None:
            raise RuntimeError(
                "FSDPStrategy.setup_module() ran before setup_environment(); call fabric.launch() first."
            )
        if isinstance(module, FSDPModule):
            return module  # the user sharded it already
        options = sharding.fully_shard_options(
            self.device_mesh,
            self.sharding_strategy,
            self.precision.precision,
            self.cpu_offload,
            self.root_device,
            self._fully_shard_kwargs,
        )
        sharding.shard(module, options, self._wrap_policy, self._checkpoint_policy)
        self.materialize(module)
        return module

    @property
    def backward_sync_control(self) -> Any:  # type: ignore[override]
        return sharding.skip_gradient_sync
