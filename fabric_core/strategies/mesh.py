"""Device-mesh steps: the shape of the mesh a sharded strategy builds after the process group.

* FSDP: 1-D ``("shard",)`` over all ranks; ``("replicate", "shard")`` for hybrid sharding
  (by default ``(num_nodes, processes per node)``) and for ``NO_SHARD`` (``(world, 1)``).
* Model parallel: ``("data_parallel", "tensor_parallel")``, by default
  ``(num_nodes, processes per node)``.

``torch.distributed.device_mesh`` is imported when a mesh is built, not before.
"""

from __future__ import annotations

from typing import Any


def build_mesh(device_type: str, shape: tuple[int, ...], names: tuple[str, ...]) -> Any:
    """``init_device_mesh`` over the default process group."""
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh(device_type, shape, mesh_dim_names=names)


def fsdp_mesh_layout(
    sharding: str, shape: tuple[int, int] | None, world_size: int, num_nodes: int, num_processes: int
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The shape and dimension names of FSDP's mesh for ``sharding`` (``FSDPStrategy(sharding_strategy=...)``)."""
    if sharding == "HYBRID_SHARD":
        shape = shape or (num_nodes, num_processes)
        if shape[0] * shape[1] != world_size:
            raise ValueError(
                f"FSDPStrategy(device_mesh={shape}) needs {shape[0] * shape[1]} processes, but the run has "
                f"{world_size}. Choose (replicas, shards) whose product is the world size."
            )
        return shape, ("replicate", "shard")
    if sharding == "NO_SHARD":
        return (world_size, 1), ("replicate", "shard")
    return (world_size,), ("shard",)


def model_parallel_shape(
    data_parallel_size: int | str, tensor_parallel_size: int | str, num_nodes: int, num_processes: int
) -> tuple[int, int]:
    """``(data_parallel, tensor_parallel)`` sizes; ``"auto"`` is the number of nodes and of processes per node."""
    data = num_nodes if data_parallel_size == "auto" else int(data_parallel_size)
    tensor = num_processes if tensor_parallel_size == "auto" else int(tensor_parallel_size)
    processes = num_nodes * num_processes
    if data * tensor != processes:
        raise ValueError(
            f"ModelParallelStrategy(data_parallel_size={data_parallel_size!r}, tensor_parallel_size="
            f"{tensor_parallel_size!r}) makes a {data} x {tensor} mesh, but the run has {processes} "
            "processes. Choose sizes whose product is the number of processes."
        )
    return data, tensor
