"""The collective interface of Lightning Fabric: one process group and the operations on it.

A :class:`Collective` owns at most one group (:meth:`create_group`), runs collectives on it
and destroys it again (:meth:`teardown`). :meth:`setup` makes sure the default process
group exists first. Operations take and return tensors in place, as ``torch.distributed``
does, so ``collective.all_reduce(t)`` both changes ``t`` and returns it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from torch import Tensor

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11

__all__ = ["Collective"]


class Collective(ABC):
    """Collective operations on one group of processes.

    Subclasses implement the operations and the group class methods over a backend
    (:class:`~fabric_core.plugins.collectives.TorchCollective` over ``torch.distributed``,
    :class:`~fabric_core.plugins.collectives.SingleDeviceCollective` for one process).
    """

    def __init__(self) -> None:
        self._group: Any = None

    @property
    @abstractmethod
    def rank(self) -> int:
        """This process's rank in the group."""

    @property
    @abstractmethod
    def world_size(self) -> int:
        """The number of processes in the group."""

    @property
    def group(self) -> Any:
        """The group this collective owns.

        :raises RuntimeError: before :meth:`create_group` (or after :meth:`teardown`).
        """
        if self._group is None:
            raise RuntimeError(
                f"{type(self).__name__} owns no process group yet: call collective.setup(...) and then "
                "collective.create_group() (all ranks by default) before running collectives."
            )
        return self._group

    # -- operations ---------------------------------------------------------------------------

    @abstractmethod
    def broadcast(self, tensor: Tensor, src: int) -> Tensor: ...

    @abstractmethod
    def all_reduce(self, tensor: Tensor, op: Any = "sum") -> Tensor: ...

    @abstractmethod
    def reduce(self, tensor: Tensor, dst: int, op: Any = "sum") -> Tensor: ...

    @abstractmethod
    def all_gather(self, tensor_list: list[Tensor], tensor: Tensor) -> list[Tensor]: ...

    @abstractmethod
    def gather(self, tensor: Tensor, gather_list: list[Tensor], dst: int = 0) -> list[Tensor]: ...

    @abstractmethod
    def scatter(self, tensor: Tensor, scatter_list: list[Tensor], src: int = 0) -> Tensor: ...

    @abstractmethod
    def reduce_scatter(self, output: Tensor, input_list: list[Tensor], op: Any = "sum") -> Tensor: ...

    @abstractmethod
    def all_to_all(self, output_tensor_list: list[Tensor], input_tensor_list: list[Tensor]) -> list[Tensor]: ...

    @abstractmethod
    def send(self, tensor: Tensor, dst: int, tag: int = 0) -> None: ...

    @abstractmethod
    def recv(self, tensor: Tensor, src: int | None = None, tag: int = 0) -> Tensor: ...

    @abstractmethod
    def barrier(self, device_ids: list[int] | None = None) -> None: ...

    # -- groups ---------------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def is_available(cls) -> bool:
        """Whether the backend can be used in this process."""

    @classmethod
    @abstractmethod
    def is_initialized(cls) -> bool:
        """Whether the default group exists."""

    @classmethod
    @abstractmethod
    def init_group(cls, **kwargs: Any) -> None:
        """Create the default group (``torch.distributed.init_process_group(**kwargs)``)."""

    @classmethod
    @abstractmethod
    def new_group(cls, **kwargs: Any) -> Any:
        """Create and return a group (``torch.distributed.new_group(**kwargs)``)."""

    @classmethod
    @abstractmethod
    def destroy_group(cls, group: Any) -> None:
        """Destroy ``group``."""

    @classmethod
    @abstractmethod
    def _convert_to_native_op(cls, op: Any) -> Any:
        """The backend's reduction for ``op`` (``"sum"``, ``"max"``, a ``ReduceOp``, ...)."""

    # -- life cycle -------------------------------------------------------------------------------

    def setup(self, **kwargs: Any) -> Self:
        """Create the default group with ``kwargs`` unless it exists already."""
        if not self.is_initialized():
            self.init_group(**kwargs)
        return self

    def create_group(self, **kwargs: Any) -> Self:
        """Create the group this collective runs on (``kwargs`` go to :meth:`new_group`).

        :raises RuntimeError: when it owns one already.
        """
        if self._group is not None:
            raise RuntimeError(
                f"{type(self).__name__} already owns a process group. Call teardown() first, or use another "
                f"{type(self).__name__}() for a second group."
            )
        self._group = self.new_group(**kwargs)
        return self

    def teardown(self) -> Self:
        """Destroy the group this collective owns (nothing happens when it owns none)."""
        if self._group is not None:
            self.destroy_group(self._group)
            self._group = None
        return self
