"""``ParallelStrategy``: Lightning's base class for strategies that run several processes.

fabric-core's multi-process strategies (DDP, and FSDP, model parallel and DeepSpeed through
it) subclass it, as in Lightning; ``DataParallelStrategy`` (one process) is registered as a
virtual subclass, so ``isinstance(strategy, ParallelStrategy)`` holds for it too. A strategy
written against Lightning's ``ParallelStrategy`` subclasses this class: it gets the ranks
from the cluster environment, the sampler arguments and the collectives over the default
process group, and implements ``root_device`` (and whatever it wraps) itself.
"""

from __future__ import annotations

from abc import ABC
from typing import Any

import torch
from torch import Tensor

from fabric_core.strategies import collectives
from fabric_core.strategies.strategy import Strategy

__all__ = ["ParallelStrategy"]


class ParallelStrategy(Strategy, ABC):
    """A strategy whose processes each hold one of ``parallel_devices``.

    :param parallel_devices: the devices of this node's processes (set by the connector
        when not given).
    :param cluster_environment: where ranks and world size come from (detected when not given).
    """

    def __init__(
        self,
        accelerator: Any = None,
        parallel_devices: list[torch.device] | None = None,
        cluster_environment: Any = None,
        checkpoint_io: Any = None,
        precision: Any = None,
    ) -> None:
        super().__init__(accelerator=accelerator, checkpoint_io=checkpoint_io, precision=precision)
        self.parallel_devices = list(parallel_devices or [])
        self.cluster_environment = cluster_environment

    @property
    def num_processes(self) -> int:
        """Processes on this node: one per device."""
        return len(self.parallel_devices)

    @property
    def global_rank(self) -> int:
        return self.cluster_environment.global_rank() if self.cluster_environment is not None else 0

    @property
    def local_rank(self) -> int:
        return self.cluster_environment.local_rank() if self.cluster_environment is not None else 0

    @property
    def node_rank(self) -> int:
        return self.cluster_environment.node_rank() if self.cluster_environment is not None else 0

    @property
    def world_size(self) -> int:
        return self.cluster_environment.world_size() if self.cluster_environment is not None else 1

    @property
    def distributed_sampler_kwargs(self) -> dict[str, int] | None:
        return {"num_replicas": self.num_nodes * self.num_processes, "rank": self.global_rank}

    def barrier(self, name: str | None = None) -> None:
        collectives.barrier(name)

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        return collectives.broadcast_object(obj, src)

    def all_gather(self, tensor: Tensor, group: Any = None, sync_grads: bool = False) -> Any:
        return collectives.all_gather(tensor, group=group, sync_grads=sync_grads)

    def all_reduce(self, tensor: Tensor, group: Any = None, reduce_op: Any = "mean") -> Tensor:
        return collectives.all_reduce(tensor, group=group, reduce_op=reduce_op)

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        """``all``: true only when every process decided true; otherwise true when any did."""
        votes = collectives.all_reduce(torch.tensor(int(decision), device=self.root_device), reduce_op="sum")
        count = int(votes.item())
        return count == self.world_size if all else count > 0
