"""``strategy="model_parallel"``: the user's own ``parallelize_fn`` over a 2-D device mesh.

Like Lightning's ``ModelParallelStrategy``: fabric-core starts the processes, builds a
``(data_parallel, tensor_parallel)`` mesh and calls ``parallelize_fn(model, mesh)``, in which
the user applies tensor parallelism (``parallelize_module``), ``fully_shard`` or both.
Everything after that (optimizer re-pointing, meta-device materialization, DTensor-aware
clipping, DCP checkpoints) is FSDPStrategy's machinery, which this class inherits.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch.distributed as dist
from torch.nn import Module

from fabric_core.strategies.ddp import DDPStrategy
from fabric_core.strategies.fsdp import FSDPStrategy


class ModelParallelStrategy(FSDPStrategy):
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
        data = self.num_nodes if self._data_parallel_size == "auto" else int(self._data_parallel_size)
        tensor = self.num_processes if self._tensor_parallel_size == "auto" else int(self._tensor_parallel_size)
        processes = self.num_nodes * self.num_processes
        if data * tensor != processes:
            raise ValueError(
                f"ModelParallelStrategy(data_parallel_size={self._data_parallel_size!r}, tensor_parallel_size="
                f"{self._tensor_parallel_size!r}) makes a {data} x {tensor} mesh, but the run has {processes} "
                "processes. Choose sizes whose product is the number of processes."
            )
        return data, tensor

    def setup_environment(self) -> None:
        DDPStrategy.setup_environment(self)  # the process group; the mesh is ours, not FSDP's
        from torch.distributed.device_mesh import init_device_mesh

        self.device_mesh = init_device_mesh(
            self.root_device.type, self._mesh_shape_for_run(), mesh_dim_names=("data_parallel", "tensor_parallel")
        )

    @property
    def distributed_sampler_kwargs(self) -> dict[str, int]:
        # Ranks of one tensor-parallel group must see the same batch.
        if self.device_mesh is None:
            data, _ = self._mesh_shape_for_run()
            return {"num_replicas": data, "rank": self.global_rank // (self.num_nodes * self.num_processes // data)}
        mesh = self.device_mesh["data_parallel"]
        return {"num_replicas": mesh.size(), "rank": mesh.get_local_rank()}

    def setup_module(self, module: Module) -> Module:
        if self.device_mesh is None:
            raise RuntimeError("ModelParallelStrategy.setup_module() ran before fabric.launch().")
        assert self._parallelize_fn is not None
        parallelized = self._parallelize_fn(module, self.device_mesh)
        if not isinstance(parallelized, Module):
            raise TypeError(
                f"parallelize_fn must return the parallelized nn.Module, but it returned {type(parallelized).__name__}."
            )
        self._materialize(parallelized)
        return parallelized

    @property
    def backward_sync_control(self) -> Any:  # type: ignore[override]
        fsdp_control = super().backward_sync_control

        def control(module: Module, enabled: bool) -> Any:
            from contextlib import nullcontext

            from torch.distributed.fsdp import FSDPModule

            # Without fully_shard in parallelize_fn there is no data-parallel sync to skip.
            return fsdp_control(module, enabled) if isinstance(module, FSDPModule) else nullcontext()

        return control
