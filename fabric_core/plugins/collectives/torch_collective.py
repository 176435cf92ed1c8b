"""``TorchCollective``: Lightning's collective interface over ``torch.distributed``."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor

from fabric_core.plugins.collectives.collective import Collective

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

__all__ = ["TorchCollective"]


class TorchCollective(Collective):
    """Collectives on a ``torch.distributed`` group (gloo on CPU, NCCL on CUDA, ...).

    Typical use, on every rank::

        collective = TorchCollective()
        collective.setup(backend="gloo", rank=rank, world_size=world_size, main_address="127.0.0.1", main_port=29500)
        collective.create_group()           # all ranks; new_group() arguments select fewer
        collective.all_reduce(tensor, op="sum")
        collective.teardown()               # destroys the group, and the default group if setup() made it

    The default group is created by :meth:`setup` only when none exists; a collective used
    inside a Fabric run shares Fabric's.
    """

    #: whether a TorchCollective created the default group (shared by every instance, as
    #: there is one default group per process)
    manages_default_group: bool = False

    def __init__(self) -> None:
        if not dist.is_available():
            raise RuntimeError(
                "TorchCollective needs torch.distributed, which this PyTorch build lacks. Install a PyTorch build "
                "with distributed support, or use SingleDeviceCollective for one process."
            )
        super().__init__()

    @property
    def rank(self) -> int:
        return dist.get_rank(self.group)

    @property
    def world_size(self) -> int:
        return dist.get_world_size(self.group)

    # -- operations ----------------------------------------------------------------------------

    def broadcast(self, tensor: Tensor, src: int) -> Tensor:
        dist.broadcast(tensor, src, group=self.group)
        return tensor

    def all_reduce(self, tensor: Tensor, op: Any = "sum") -> Tensor:
        dist.all_reduce(tensor, op=self._convert_to_native_op(op), group=self.group)
        return tensor

    def reduce(self, tensor: Tensor, dst: int, op: Any = "sum") -> Tensor:
        dist.reduce(tensor, dst, op=self._convert_to_native_op(op), group=self.group)
        return tensor

    def all_gather(self, tensor_list: list[Tensor], tensor: Tensor) -> list[Tensor]:
        dist.all_gather(tensor_list, tensor, group=self.group)
        return tensor_list

    def gather(self, tensor: Tensor, gather_list: list[Tensor], dst: int = 0) -> list[Tensor]:
        # torch wants no list on the ranks that do not receive.
        dist.gather(tensor, gather_list if self.rank == dst else None, dst, group=self.group)
        return gather_list

    def scatter(self, tensor: Tensor, scatter_list: list[Tensor], src: int = 0) -> Tensor:
        dist.scatter(tensor, scatter_list if self.rank == src else None, src, group=self.group)
        return tensor

    def reduce_scatter(self, output: Tensor, input_list: list[Tensor], op: Any = "sum") -> Tensor:
        dist.reduce_scatter(output, input_list, op=self._convert_to_native_op(op), group=self.group)
        return output

    def all_to_all(self, output_tensor_list: list[Tensor], input_tensor_list: list[Tensor]) -> list[Tensor]:
        dist.all_to_all(output_tensor_list, input_tensor_list, group=self.group)
        return output_tensor_list

    def send(self, tensor: Tensor, dst: int, tag: int = 0) -> None:
        dist.send(tensor, dst, group=self.group, tag=tag)

    def recv(self, tensor: Tensor, src: int | None = None, tag: int = 0) -> Tensor:
        dist.recv(tensor, src, group=self.group, tag=tag)
        return tensor

    def all_gather_object(self, object_list: list[Any], obj: Any) -> list[Any]:
        dist.all_gather_object(object_list, obj, group=self.group)
        return object_list

    def broadcast_object_list(self, object_list: list[Any], src: int, device: torch.device | None = None) -> list[Any]:
        dist.broadcast_object_list(object_list, src, group=self.group, device=device)
        return object_list

    def gather_object(self, obj: Any, object_gather_list: list[Any], dst: int = 0) -> list[Any]:
        dist.gather_object(obj, object_gather_list if self.rank == dst else None, dst, group=self.group)
        return object_gather_list

    def scatter_object_list(
        self, scatter_object_output_list: list[Any], scatter_object_input_list: list[Any], src: int = 0
    ) -> list[Any]:
        inputs = scatter_object_input_list if self.rank == src else None
        dist.scatter_object_list(scatter_object_output_list, inputs, src, group=self.group)
        return scatter_object_output_list

    def barrier(self, device_ids: list[int] | None = None) -> None:
        if self.group is dist.GroupMember.NON_GROUP_MEMBER:
            return  # this rank is not in the group: nothing to wait for
        dist.barrier(group=self.group, device_ids=device_ids)

    def monitored_barrier(self, timeout: timedelta | None = None, wait_all_ranks: bool = False) -> None:
        """A barrier that names the ranks that did not arrive within ``timeout`` (gloo only)."""
        dist.monitored_barrier(group=self.group, timeout=timeout, wait_all_ranks=wait_all_ranks)

    # -- life cycle ---------------------------------------------------------------------------

    def setup(self, main_address: str | None = None, main_port: int | str | None = None, **kwargs: Any) -> Self:
        """Create the default group unless one exists (``kwargs`` go to ``init_process_group``).

        :param main_address: ``MASTER_ADDR`` for the rendezvous, when the environment has none.
        :param main_port: ``MASTER_PORT`` likewise. Variables set here are removed again once
            the group exists.
        """
        if self.is_initialized():
            return self
        added: list[str] = []
        for variable, value in (("MASTER_ADDR", main_address), ("MASTER_PORT", main_port)):
            if value is not None and variable not in os.environ:
                os.environ[variable] = str(value)
                added.append(variable)
        try:
            super().setup(**kwargs)
        finally:
            for variable in added:
                os.environ.pop(variable, None)
        TorchCollective.manages_default_group = True
        return self

    def teardown(self) -> Self:
        """Destroy the owned group, then the default group when :meth:`setup` created it and
        no other group is left."""
        member = self._group is not dist.GroupMember.NON_GROUP_MEMBER
        if self._group is not None and not member:
            self._group = None  # not a member: there is nothing to destroy on this rank
        super().teardown()
        world = dist.GroupMember.WORLD
        if member and TorchCollective.manages_default_group and world is not None and dist.is_initialized():
            groups = dist.distributed_c10d._pg_map
            if len(groups) == 1 and world in groups:
                self.destroy_group(world)
                TorchCollective.manages_default_group = False
        return self

    @classmethod
    def is_available(cls) -> bool:
        return dist.is_available()

    @classmethod
    def is_initialized(cls) -> bool:
        return dist.is_available() and dist.is_initialized()

    @classmethod
    def init_group(cls, **kwargs: Any) -> None:
        dist.init_process_group(**kwargs)

    @classmethod
    def new_group(cls, **kwargs: Any) -> Any:
        return dist.new_group(**kwargs)

    @classmethod
    def destroy_group(cls, group: Any) -> None:
        dist.destroy_process_group(group)

    @classmethod
    def _convert_to_native_op(cls, op: Any) -> Any:
        """``"sum"``, ``"max"``, ``"avg"``, ... (any case) or a ``ReduceOp`` -> the ``ReduceOp``.

        :raises ValueError: for anything else, listing the names accepted.
        """
        if isinstance(op, (dist.ReduceOp, dist.ReduceOp.RedOpType)):
            return op
        names = [name for name in dir(dist.ReduceOp) if name.isupper()]
        if isinstance(op, str):
            found = getattr(dist.ReduceOp, op.upper(), None)
            if found is not None and op.upper() in names:
                return found
        raise ValueError(
            f"Reduction op {op!r} is not supported: pass a torch.distributed.ReduceOp or one of the names "
            f"{[name.lower() for name in names]} (any case)."
        )
