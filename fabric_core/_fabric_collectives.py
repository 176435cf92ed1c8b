"""``Fabric``'s collectives: ``barrier``, ``broadcast``, ``all_gather``, ``all_reduce``, ``rank_zero_first``.

A part of :class:`~fabric_core.fabric.Fabric`, kept in a module of its own: each method
starts the run's environment if needed (so a collective before ``setup`` works under
torchrun) and hands the work to the strategy, tensor by tensor for collections.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from torch import Tensor

from fabric_core.utilities.apply_func import apply_to_collection, convert_to_tensors

if TYPE_CHECKING:
    from fabric_core.strategies.strategy import Strategy


class CollectiveMethods:
    """Fabric's methods that every process calls together."""

    if TYPE_CHECKING:
        _strategy: Strategy

        def _validate_launched(self) -> None: ...

    def barrier(self, name: str | None = None) -> None:
        """Wait until every process reaches this point."""
        self._validate_launched()
        self._strategy.barrier(name=name)

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        """Send a picklable object from process ``src`` to all."""
        self._validate_launched()
        return self._strategy.broadcast(obj, src=src)

    def all_gather(self, data: Any, group: Any = None, sync_grads: bool = False) -> Any:
        """Gather tensors (or collections of them) from every process, stacked on a new first dimension."""
        strategy = self._strategy
        return self._each_tensor(data, lambda tensor: strategy.all_gather(tensor, group=group, sync_grads=sync_grads))

    def all_reduce(self, data: Any, group: Any = None, reduce_op: str | Any = "mean") -> Any:
        """Reduce tensors (or collections of them) over every process; ``"mean"``, ``"sum"`` or a ReduceOp."""
        strategy = self._strategy
        return self._each_tensor(data, lambda tensor: strategy.all_reduce(tensor, group=group, reduce_op=reduce_op))

    def _each_tensor(self, data: Any, collective: Callable[[Tensor], Any]) -> Any:
        # Numbers become tensors on this process's device first, as in Lightning Fabric.
        self._validate_launched()
        data = convert_to_tensors(data, device=self._strategy.root_device)
        return apply_to_collection(data, Tensor, collective)

    @contextmanager
    def rank_zero_first(self, local: bool = False) -> Generator[None, None, None]:
        """Let rank 0 (per node with ``local=True``) run the block first, then the others."""
        rank = self._strategy.local_rank if local else self._strategy.global_rank
        if rank > 0:
            self.barrier("rank_zero_first")
        yield
        if rank == 0:
            self.barrier("rank_zero_first")
