"""Process-group steps of the multi-process strategies, in the order they run.

1. :func:`assign_ranks`: tell the cluster environment this process's global rank and the
   world size (environments whose scheduler fixes them, torchrun or SLURM, ignore it);
2. :func:`~fabric_core._rank.record_rank`: record the rank for logging, ``rank_zero_only``
   and the launcher's failure report;
3. :func:`init_process_group`: start ``torch.distributed``'s default group (once);

and at teardown :func:`release_ddp_wrappers`, then :func:`destroy_process_group`.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import torch.distributed as dist

from fabric_core import _logging

_log = _logging.get_logger("fabric_core.strategies.ddp")


def assign_ranks(environment: Any, num_nodes: int, num_processes: int, node_rank: int, local_rank: int) -> None:
    """Set the world size and this process's global rank on ``environment`` (node-major numbering)."""
    environment.set_world_size(num_nodes * num_processes)
    environment.set_global_rank(node_rank * num_processes + local_rank)


def init_process_group(
    environment: Any, backend: str, rank: int, world_size: int, timeout: timedelta | None, owner: str = "DDP"
) -> None:
    """Start the default process group at the environment's address and port, unless one exists."""
    if not dist.is_available():
        raise RuntimeError(f"torch.distributed is not available in this PyTorch build; {owner} needs it.")
    if dist.is_initialized():
        return
    os.environ["MASTER_ADDR"] = environment.main_address
    os.environ["MASTER_PORT"] = str(environment.main_port)
    _log.info("initializing process group", backend=backend, rank=rank, world_size=world_size)
    dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timeout)
    _started["here"] = True


def release_ddp_wrappers(modules: Iterable[Any]) -> None:
    """Free each ``DistributedDataParallel`` wrapper's C++ reducer while the process group still exists.

    Left to interpreter shutdown, gloo's threads are destroyed in the wrong order and the
    process aborts ("terminate called without an active exception") about one run in eight
    with torch 2.13. The wrappers cannot sync gradients after teardown anyway.
    """
    for module in list(modules):
        for attribute in ("logger", "reducer"):
            if hasattr(module, attribute):
                delattr(module, attribute)
    gc.collect()


# How long teardown lets the collective backends' threads take the GIL: far more than they
# need (microseconds) once they can run, short enough not to be noticed at the end of a run.
BACKEND_THREADS_GRACE = 0.02
# Whether this process started a process group: its threads may outlive a destroy_process_group()
# the script called itself.
_started = {"here": False}


def destroy_process_group() -> None:
    """Destroy the default process group, if there is one, once its threads are done with Python.

    A gloo worker thread often holds the last reference to the tensors of the run's final
    collective (the result of ``fabric.all_gather``, or of ``full_tensor()`` under FSDP) for a
    moment after the main thread has moved on, and dropping a tensor that Python also
    references takes the GIL. When that thread gets the GIL only once the interpreter has
    begun to finalize, Python ends it inside a C++ destructor and the process aborts
    (``terminate called without an active exception``, SIGABRT) although the run finished;
    the launcher then reports the rank as failed. The process group outlives teardown where
    FSDP's mesh still references it, so its destructor cannot join those threads here.
    Sleeping releases the GIL and lets them finish first (measured: one 2-process FSDP run
    in ten aborted without it, none in 120 with it). The pause also runs when the script
    destroyed the group itself: FSDP's references keep the threads alive all the same.
    """
    if not dist.is_available():
        return
    if dist.is_initialized() or _started["here"]:
        time.sleep(BACKEND_THREADS_GRACE)
    if dist.is_initialized():
        dist.destroy_process_group()
