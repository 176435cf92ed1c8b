"""``strategy="model_parallel"``: the user's own ``parallelize_fn`` over a 2-D device mesh.

Like Lightning's ``ModelParallelStrategy``: fabric-core starts the processes, builds a
``(data_parallel, tensor_parallel)`` mesh (:func:`~fabric_core.strategies.mesh.model_parallel_shape`)
and calls ``parallelize_fn(model, mesh)``, in which the user applies tensor parallelism
(``parallelize_module``), ``fully_shard`` or both. What follows (optimizer re-pointing,
meta-device materialization, DTensor-aware clipping, DCP checkpoints) is shared with FSDP
through :class:`~fabric_core.strategies.sharded.ShardedStrategy`: the two are siblings.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from datetime import timedelta
from typing import Any

import torch.distributed as dist
from torch.nn import Module

from fabric_core.strategies import mesh, sharding
from fabric_core.strategies.sharded import ShardedStrategy


class ModelParallelStrategy(ShardedStrategy):
    """Run ``parallelize_fn(model, device_mesh)`` on a 2-D mesh.

    :param parallelize_fn: takes the model and the mesh (dimensions ``"data_parallel"`` and
        ``"tensor_parallel"``) and returns the parallelized model.
    :param data_parallel_size: size of the data-parallel dimension; ``"auto"`` is the number of nodes.
    :param tensor_parallel_size: size of the tensor-parallel dimension; ``"auto"`` is the
        number of processes per node.
    :param save_distributed_checkpoint: ``True`` for DCP directories, ``False`` for one full file.
    """

    def __init__(
        self,
        parallelize_fn: Callable[[Module, Any], Module] | None = None,
        data_parallel_size: int | str = "auto",
        tensor_parallel_size: int | str = "auto",
        save_distributed_checkpoint: bool = True,
        process_group_backend: str | None = None,
        timeout: timedelta | None = dist.default_pg_timeout,
        start_method: str = "popen",
    ) -> None:
        if parallelize_fn is not None and not callable(parallelize_fn):
            raise TypeError(
                f"ModelParallelStrategy(parallelize_fn={parallelize_fn!r}): expected a function (model, device_mesh) "
                "-> model."
            )
        super().__init__(
            state_dict_type="sharded" if save_distributed_checkpoint else "full",
            process_group_backend=process_group_backend,
            timeout=timeout,
            start_method=start_method,
        )
        self._parallelize_fn = parallelize_fn
        self._data_parallel_size = data_parallel_size
        self._tensor_parallel_size = tensor_parallel_size

    def __repr__(self) -> str:
        return f"ModelParallelStrategy(parallelize_fn={getattr(self._parallelize_fn, '__name__', '?')})"

    def validate(self) -> None:
        if self._parallelize_fn is None:
            raise ValueError(
                "strategy='model_parallel' needs your parallelize_fn(model, device_mesh). Pass "
                "Fabric(strategy=ModelParallelStrategy(parallelize_fn=...)) from fabric_core.strategies.model_parallel."
            )

    def _mesh_shape_for_run(self) -> tuple[int, int]:
        return mesh.model_parallel_shape(
            self._data_parallel_size, self._tensor_parallel_size, self.num_nodes, self.num_processes
        )

    def build_device_mesh(self) -> Any:
        return mesh.build_mesh(self.root_device.type, self._mesh_shape_for_run(), ("data_parallel", "tensor_parallel"))

    @property
    def distributed_sampler_kwargs(self) -> dict[str, int]:
        # Ranks of one tensor-parallel group must see the same batch.
        if self.device_mesh is None:
            data, _ = self._mesh_shape_for_run()
            return {"num_replicas": data, "rank": self.global_rank // (self.num_nodes * self.num_processes // data)}
        data_parallel = self.device_mesh["data_parallel"]
        return {"num_replicas": data_parallel.size(), "rank": data_parallel.get_local_rank()}

    def setup_module(self, module: Module) -> Module:
        if self.device_mesh is None:
            raise RuntimeError("ModelParallelStrategy.setup_module() ran before fabric.launch().")
        assert self._parallelize_fn is not None
        parallelized = self._parallelize_fn(module, self.device_mesh)
        if not isinstance(parallelized, Module):
            raise TypeError(
                f"parallelize_fn must return the parallelized nn.Module, but it returned {type(parallelized).__name__}."
            )
        self.materialize(parallelized)
        return parallelized

    @property
    def backward_sync_control(self) -> Any:  # type: ignore[override]
        def control(module: Module, enabled: bool) -> Any:
            from torch.distributed.fsdp import FSDPModule

            # Without fully_shard in parallelize_fn there is no data-parallel sync to skip.
            return sharding.skip_gradient_sync(module, enabled) if isinstance(module, FSDPModule) else nullcontext()

        return control
