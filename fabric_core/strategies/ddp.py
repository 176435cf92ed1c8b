"""Data-parallel training over processes with ``DistributedDataParallel``.

One class serves every DDP name (``ddp``, ``ddp_spawn``, ``ddp_fork``, ``ddp_notebook``
and their ``_find_unused_parameters_true`` variants) through its ``start_method`` and
DDP keyword arguments. The process group uses gloo on CPU and NCCL on CUDA unless told
otherwise. The steps, in order:

1. ``configure_launcher``: re-run the script (``popen``) or start children
   (``spawn``/``fork``), unless a launcher outside Fabric started the processes;
2. ``setup_environment``: :func:`~fabric_core.strategies.process_group.assign_ranks`,
   :func:`~fabric_core._rank.record_rank`, the device, then
   :func:`~fabric_core.strategies.process_group.init_process_group`;
3. ``setup_module``: wrap the model in ``DistributedDataParallel``;
4. ``teardown``: release the DDP wrappers, then destroy the process group.

The sharded strategies (:mod:`~fabric_core.strategies.sharded`) build on the same steps.
"""

from __future__ import annotations

import weakref
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn import Module
from torch.nn.parallel import DistributedDataParallel

from fabric_core._rank import record_rank
from fabric_core.strategies import collectives, process_group
from fabric_core.strategies.launchers.multiprocessing import MultiProcessingLauncher
from fabric_core.strategies.launchers.subprocess_script import SubprocessScriptLauncher
from fabric_core.strategies.parallel import ParallelStrategy

_START_METHODS = ("popen", "spawn", "fork", "forkserver")


class DDPStrategy(ParallelStrategy):
    """Each process holds a full model replica; gradients are averaged during backward.

    :param process_group_backend: ``"gloo"``, ``"nccl"``, ...; by default gloo on CPU and
        NCCL on CUDA.
    :param timeout: how long collectives wait for the other processes before failing.
    :param start_method: ``"popen"`` (re-run the script for each rank: ``strategy="ddp"``),
        ``"spawn"``, ``"fork"`` or ``"forkserver"``.
    :param checkpoint_sync_timeout: how long ``fabric.save`` waits for every rank to arrive
        before rank 0 writes; a save called on some ranks only fails after it, naming them.
    :param kwargs: passed on to :class:`~torch.nn.parallel.DistributedDataParallel`
        (``find_unused_parameters``, ``static_graph``, ``bucket_cap_mb``, ...).
    """

    requires_forward_path = True

    def __init__(
        self,
        accelerator: Any = None,
        parallel_devices: list[torch.device] | None = None,
        cluster_environment: Any = None,
        checkpoint_io: Any = None,
        precision: Any = None,
        process_group_backend: str | None = None,
        timeout: timedelta | None = dist.default_pg_timeout,
        start_method: str = "popen",
        checkpoint_sync_timeout: timedelta = timedelta(seconds=120),
        **kwargs: Any,
    ) -> None:
        super().__init__(
            accelerator=accelerator,
            parallel_devices=parallel_devices,
            cluster_environment=cluster_environment,
            checkpoint_io=checkpoint_io,
            precision=precision,
        )
        if start_method not in _START_METHODS:
            raise ValueError(f"DDPStrategy(start_method={start_method!r}): expected one of {list(_START_METHODS)}.")
        self._process_group_backend = process_group_backend
        self._timeout = timeout
        self._start_method = start_method
        self._ddp_kwargs = kwargs
        self._checkpoint_sync_timeout = checkpoint_sync_timeout
        self._local_rank: int | None = None
        self._ddp_modules: weakref.WeakSet[DistributedDataParallel] = weakref.WeakSet()

    def __getstate__(self) -> dict[str, Any]:
        # Spawned processes get a copy before any model is set up; weak sets do not pickle.
        state = dict(self.__dict__)
        state["_ddp_modules"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._ddp_modules = weakref.WeakSet()

    # -- composition -----------------------------------------------------------------------

    def connect(self, **kwargs: Any) -> None:
        super().connect(**kwargs)
        # As in Lightning Fabric, the ranks hold from construction on: code before launch()
        # (`if fabric.is_global_zero:`, fabric.print, rank_zero_only) sees this process's rank
        # and the run's world size, not those of a single process.
        assert self.cluster_environment is not None
        process_group.assign_ranks(
            self.cluster_environment, self.num_nodes, self.num_processes, self.node_rank, self.local_rank
        )
        record_rank(self.global_rank, self.world_size)

    def configure_launcher(self) -> None:
        assert self.cluster_environment is not None
        if self._start_method == "popen":
            self.launcher = SubprocessScriptLauncher(self.cluster_environment, self.num_processes, self.num_nodes)
        elif not self.cluster_environment.creates_processes_externally:
            self.launcher = MultiProcessingLauncher(self, start_method=self._start_method)
        else:
            self.launcher = None

    @property
    def start_method(self) -> str:
        return self._start_method

    @property
    def process_group_backend(self) -> str:
        if self._process_group_backend is not None:
            return self._process_group_backend
        return "nccl" if self.root_device.type == "cuda" else "gloo"

    @property
    def timeout(self) -> timedelta | None:
        return self._timeout

    # -- where this process stands ------------------------------------------------------------

    def set_local_rank(self, rank: int) -> None:
        self._local_rank = rank

    @property
    def local_rank(self) -> int:
        if self._local_rank is not None:
            return self._local_rank
        return self.cluster_environment.local_rank() if self.cluster_environment is not None else 0

    @property
    def root_device(self) -> torch.device:
        if not self.parallel_devices:
            return torch.device("cpu")
        return self.parallel_devices[min(self.local_rank, len(self.parallel_devices) - 1)]

    @property
    def distributed_sampler_kwargs(self) -> dict[str, int]:
        return {"num_replicas": self.world_size, "rank": self.global_rank}

    def setup_environment(self) -> None:
        environment = self.cluster_environment
        assert environment is not None
        process_group.assign_ranks(environment, self.num_nodes, self.num_processes, self.node_rank, self.local_rank)
        record_rank(self.global_rank, self.world_size, report_uncaught=True)
        super().setup_environment()  # the device
        process_group.init_process_group(
            environment, self.process_group_backend, self.global_rank, self.world_size, self._timeout
        )

    # -- models --------------------------------------------------------------------------------

    def setup_module(self, module: Module) -> Module:
        device_ids = [self.root_device.index] if self.root_device.type == "cuda" else None
        wrapped = DistributedDataParallel(module, device_ids=device_ids, **self._ddp_kwargs)
        self._ddp_modules.add(wrapped)
        return wrapped

    @property
    def backward_sync_control(self) -> Any:  # type: ignore[override]
        def control(module: Module, enabled: bool) -> AbstractContextManager:
            if not isinstance(module, DistributedDataParallel):
                raise TypeError(
                    f"no_backward_sync() expected the DistributedDataParallel model set up by this strategy, got "
                    f"{type(module).__name__}."
                )
            return module.no_sync() if enabled else nullcontext()

        return control

    def backward(self, tensor: Tensor, module: Module | None, *args: Any, **kwargs: Any) -> None:
        try:
            super().backward(tensor, module, *args, **kwargs)
        except (RuntimeError, dist.DistError) as err:
            # The gradient all-reduce runs inside backward: a rank that never got there shows up
            # here as a bare gloo/NCCL timeout. Name the operation and, where known, the rank.
            if not collectives.is_collective_failure(err):
                raise
            raise collectives.describe_failure("fabric.backward (the gradient all-reduce)", err) from err

    # -- collectives ----------------------------------------------------------------------------

    def barrier(self, name: str | None = None) -> None:
        collectives.barrier(name, timeout=self._timeout)

    # -- checkpoints ------------------------------------------------------------------------------

    def save_checkpoint(
        self, path: Any, state: dict[str, Any], filter: dict[str, Any] | None = None, storage_options: Any = None
    ) -> None:
        self.ensure_every_rank_saves(path)
        super().save_checkpoint(path, state, filter=filter, storage_options=storage_options)

    def ensure_every_rank_saves(self, path: Any) -> None:
        """Check that every rank reached ``fabric.save`` before anyone writes.

        The check is quick and has its own, shorter timeout, so a save called on one rank only
        fails with a message instead of waiting out the collective timeout.
        """
        timeout = self._checkpoint_sync_timeout
        if self._timeout is not None:
            timeout = min(timeout, self._timeout)
        try:
            collectives.barrier("fabric.save", timeout=timeout)
        except collectives.CollectiveError as err:
            raise collectives.CollectiveError(
                f"fabric.save({str(path)!r}) was called on rank {self.global_rank}, but not every rank called it "
                f"within {timeout.total_seconds():.0f}s. Call fabric.save() on every rank: only rank 0 writes the "
                "file, the others take part so that the run stays in step.",
                operation="save",
                rank=self.global_rank,
                timed_out=err.timed_out,
                missing_ranks=err.missing_ranks,
            ) from err

    def teardown(self) -> None:
        super().teardown()
        process_group.release_ddp_wrappers(self._ddp_modules)
        self._ddp_modules.clear()
        process_group.destroy_process_group()

    def __repr__(self) -> str:
        return f"DDPStrategy(start_method={self._start_method!r}, devices={self.num_processes}, nodes={self.num_nodes})"
