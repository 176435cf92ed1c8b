"""``strategy="xla"``: one process per XLA device, started by XLA's launcher (Lightning's ``XLAStrategy``).

In the order a run meets it:

1. **Selection**: the devices are counted without starting the XLA runtime; more than one
   device on the CPU is refused, because torch_xla's CPU client has no collectives between
   devices (they hang, then the runtime aborts: pytorch/xla#9089).
2. **Launch**: :class:`~fabric_xla.launcher.XLALauncher` runs ``fabric.launch(fn)``'s
   function on every device through ``torch_xla.launch``; the ranks are PJRT's ordinals.
3. **Setup**: the model moves to the process's device and, with several processes, the
   parameters of rank 0 are broadcast to the others (``sync_module_states``). There is no
   wrapper: gradients are all-reduced by ``xm.optimizer_step``.
4. **Step**: ``optimizer.step()`` is ``xm.optimizer_step`` (all-reduce the gradients, step,
   end the XLA graph). ``fabric.clip_gradients`` all-reduces the gradients first, so every
   replica clips the same norm, and that step then does not reduce them again.
5. **Collectives**: ``barrier`` is ``xm.rendezvous``; ``all_reduce``/``all_gather`` are
   ``xm.all_reduce``/``xm.all_gather`` on the device (results come back on the tensor's own
   device); ``broadcast`` sends tensors with ``xm.collective_broadcast`` and other objects as
   pickled rendezvous payloads.
6. **Checkpoints**: one file, written by global rank 0 through ``xm.save``
   (:class:`~fabric_xla.checkpoint_io.XLACheckpointIO`), loaded through fabric-core's safe load.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
from fabric_core.strategies.strategy import Strategy
from torch import Tensor
from torch.nn import Module
from torch.optim import Optimizer

from fabric_xla.environment import XLAEnvironment
from fabric_xla.launcher import XLALauncher
from fabric_xla.strategies._common import (
    adopt_xla_components,
    check_accelerator,
    check_available,
    host_module_init_context,
    move_module,
    parallel_loader,
)

_REDUCE_OPS = {"sum": "sum", "mean": "mean", "avg": "mean", "max": "max", "min": "min"}


class XLAStrategy(Strategy):
    """Data parallel training on XLA devices, one process per device.

    :param accelerator: set by the connector when not given.
    :param parallel_devices: set by the connector when not given.
    :param checkpoint_io: :class:`~fabric_xla.checkpoint_io.XLACheckpointIO` when not given.
    :param precision: set by the connector (``XLAPrecision``) when not given.
    :param sync_module_states: broadcast rank 0's parameters to the other ranks at setup.
    :param start_method: how XLA's launcher starts processes: ``"spawn"``, or ``"fork"`` in notebooks.
    """

    strategy_name = "xla"

    def __init__(
        self,
        accelerator: Any = None,
        parallel_devices: list[torch.device] | None = None,
        checkpoint_io: Any = None,
        precision: Any = None,
        sync_module_states: bool = True,
        start_method: str = "spawn",
    ) -> None:
        check_available(self.strategy_name)
        super().__init__(accelerator=accelerator, checkpoint_io=checkpoint_io, precision=precision)
        self.parallel_devices = list(parallel_devices or [])
        self.cluster_environment = XLAEnvironment()
        self._sync_module_states = sync_module_states
        self._start_method = start_method
        self._launched = False
        self._reduced: set[int] = set()  # optimizers whose gradients fabric.clip_gradients reduced already

    # -- selection -----------------------------------------------------------------------------

    def connect(self, **kwargs: Any) -> None:
        super().connect(**kwargs)
        adopt_xla_components(self)

    def module_init_context(self, empty_init: bool | None = None) -> AbstractContextManager:
        return host_module_init_context(self, empty_init)

    def module_to_device(self, module: Module) -> None:
        move_module(module, self.root_device)

    def batches_to_device(self, batches: Iterable[Any], device: torch.device) -> Iterable[Any]:
        return parallel_loader(batches, device)

    def validate(self) -> None:
        check_accelerator(self, self.strategy_name)
        from fabric_xla.accelerator import XLAAccelerator

        devices = len(self.parallel_devices)
        device_type = XLAAccelerator.device_type()
        if devices > 1 and device_type == "CPU":
            raise ValueError(
                f"strategy={self.strategy_name!r} on {devices} XLA CPU devices cannot run: torch_xla's CPU client "
                "has no collectives between devices (all_reduce, all_gather and rendezvous hang, then the runtime "
                "aborts the process; pytorch/xla#9089), so gradients could never be synchronized. Use devices=1 on "
                "the CPU (strategy='single_xla', or this strategy on one device), or run on TPUs."
            )
        available = XLAAccelerator.auto_device_count()
        if 1 < devices != available:
            raise ValueError(
                f"strategy={self.strategy_name!r} with devices={devices}: XLA's launcher starts one process per device "
                f"of the host, {available} here ({device_type}). Use devices={available} (or 'auto'), or devices=1."
            )

    def configure_launcher(self) -> None:
        self.launcher = XLALauncher(self, start_method=self._start_method)

    # -- where this process stands ---------------------------------------------------------------

    @property
    def root_device(self) -> torch.device:
        if self._launched:
            import torch_xla

            return torch.device(torch_xla.device())
        # Before launch: a plain torch.device, which does not start the XLA runtime.
        return self.parallel_devices[0] if self.parallel_devices else torch.device("xla", 0)

    @property
    def global_rank(self) -> int:
        return self.cluster_environment.global_rank() if self._launched and self.cluster_environment else 0

    @property
    def local_rank(self) -> int:
        return self.cluster_environment.local_rank() if self._launched and self.cluster_environment else 0

    @property
    def node_rank(self) -> int:
        return self.cluster_environment.node_rank() if self._launched and self.cluster_environment else 0

    @property
    def world_size(self) -> int:
        if self._launched and self.cluster_environment is not None:
            return self.cluster_environment.world_size()
        return max(len(self.parallel_devices), 1) * self.num_nodes

    @property
    def distributed_sampler_kwargs(self) -> dict[str, int] | None:
        return {"num_replicas": self.world_size, "rank": self.global_rank}

    def setup_environment(self) -> None:
        self._launched = True
        super().setup_environment()

    # -- models and steps --------------------------------------------------------------------------

    def setup_module(self, module: Module) -> Module:
        if self._sync_module_states and self.world_size > 1:
            import torch_xla.core.xla_model as xm

            xm.broadcast_master_param(module)
        return module

    def optimizer_step(self, optimizer: Optimizer, **kwargs: Any) -> Any:
        if id(optimizer) in self._reduced:
            self._reduced.discard(id(optimizer))
            import torch_xla

            result = optimizer.step(**kwargs)
            torch_xla.sync()  # the end of this step's XLA graph
            return result
        return self.precision.optimizer_step(optimizer, **kwargs)

    def _reduce_gradients_before_clipping(self, optimizer: Optimizer) -> None:
        if self.world_size > 1:
            import torch_xla.core.xla_model as xm

            xm.reduce_gradients(optimizer)
            self._reduced.add(id(optimizer))

    def clip_gradients_norm(
        self,
        module: Module,
        optimizer: Optimizer,
        max_norm: float | int,
        norm_type: float | int = 2.0,
        error_if_nonfinite: bool = True,
    ) -> Tensor:
        self._reduce_gradients_before_clipping(optimizer)
        return super().clip_gradients_norm(module, optimizer, max_norm, norm_type, error_if_nonfinite)

    def clip_gradients_value(self, module: Module, optimizer: Optimizer, clip_val: float | int) -> None:
        self._reduce_gradients_before_clipping(optimizer)
        super().clip_gradients_value(module, optimizer, clip_val)

    # -- collectives ------------------------------------------------------------------------------

    def barrier(self, name: str | None = None) -> None:
        if self.world_size > 1:
            import torch_xla.core.xla_model as xm

            xm.rendezvous(name or "fabric.barrier")

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        if self.world_size == 1:
            return obj
        import torch_xla.core.xla_model as xm

        if isinstance(obj, Tensor):
            original = obj.device
            tensor = obj.unsqueeze(0) if obj.dim() == 0 else obj
            tensor = tensor.to(self.root_device)
            xm.collective_broadcast([tensor], root_ordinal=src)
            return tensor.reshape(obj.shape).to(original)
        payloads = xm.rendezvous("fabric.broadcast", pickle.dumps(obj) if self.global_rank == src else b"")
        return pickle.loads(payloads[src])

    def all_gather(self, tensor: Tensor, group: Any = None, sync_grads: bool = False) -> Tensor:
        """``(world_size, *tensor.shape)``, as fabric-core's other strategies; ``tensor`` itself on one process."""
        if self.world_size == 1:
            return tensor
        import torch_xla.core.functions as xf
        import torch_xla.core.xla_model as xm

        original = tensor.device
        stacked = tensor.unsqueeze(0).to(self.root_device)
        gathered: Tensor = xf.all_gather(stacked) if sync_grads else xm.all_gather(stacked)
        return gathered.to(original)

    def all_reduce(self, tensor: Tensor, group: Any = None, reduce_op: Any = "mean") -> Tensor:
        op = _reduce_op_name(reduce_op)
        if self.world_size == 1 or not isinstance(tensor, Tensor):
            return tensor
        import torch_xla.core.xla_model as xm

        original = tensor.device
        on_device = tensor.to(self.root_device)
        xla_op = {"sum": xm.REDUCE_SUM, "mean": xm.REDUCE_SUM, "max": xm.REDUCE_MAX, "min": xm.REDUCE_MIN}[op]
        reduced: Tensor = xm.all_reduce(xla_op, on_device)
        if op == "mean":
            reduced = reduced / self.world_size
        return reduced.to(original)

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        votes = self.all_reduce(torch.tensor(int(decision), device=self.root_device), reduce_op="sum")
        return bool(votes == self.world_size) if all else bool(votes > 0)

    # -- checkpoints ------------------------------------------------------------------------------

    def save_checkpoint(
        self,
        path: str | Path,
        state: dict[str, Any],
        filter: dict[str, Any] | None = None,
        storage_options: Any = None,
    ) -> None:
        """One file: every rank converts the state, global rank 0 writes it through ``xm.save``."""
        checkpoint = self.convert_state(state, filter)
        if self.is_global_zero:
            self.checkpoint_io.save_checkpoint(checkpoint, path, storage_options=storage_options)
        self.barrier("fabric.save")

    def teardown(self) -> None:
        self._launched = False
        super().teardown()

    def __getstate__(self) -> dict[str, Any]:
        # Sent to the processes XLA's launcher spawns: they start unlaunched, like this one.
        state = dict(self.__dict__)
        state["launcher"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.launcher = XLALauncher(self, start_method=self._start_method)


def _reduce_op_name(reduce_op: Any) -> str:
    name = str(getattr(reduce_op, "name", reduce_op)).lower().removeprefix("reduceop.")
    if name not in _REDUCE_OPS:
        raise ValueError(
            f"all_reduce(reduce_op={reduce_op!r}) is not supported on XLA devices: use 'sum', 'mean', 'max' or 'min'."
        )
    return _REDUCE_OPS[name]
