"""DeepSpeed's communication layer, put on top of the process group the DDP strategy created.

``fabric.launch()`` creates the process group as for ``strategy="ddp"`` (gloo on the CPU,
NCCL on CUDA); :func:`init_deepspeed_comm` then starts ``deepspeed.comm`` over that group,
without MPI discovery. On the CPU, DeepSpeed would JIT-compile a shared-memory all-reduce
kernel here (a minute or more, once per ``TORCH_EXTENSIONS_DIR``) that only its
tensor-parallel inference uses: it is turned off unless ``shm_comm`` asks for it, and
DeepSpeed then falls back to ``torch.distributed``.
"""

from __future__ import annotations

from datetime import timedelta

import torch.distributed as dist

from fabric_deepspeed._imports import import_deepspeed


def init_deepspeed_comm(
    strategy_name: str, backend: str, timeout: timedelta | None, device_type: str, shm_comm: bool
) -> None:
    """``deepspeed.init_distributed`` over the existing process group (``backend``, ``timeout``)."""
    deepspeed = import_deepspeed(strategy_name)
    if device_type == "cpu" and not shm_comm:
        from deepspeed import ops

        ops.__compatible_ops__["deepspeed_shm_comm"] = False
    deepspeed.init_distributed(
        dist_backend=backend,
        auto_mpi_discovery=False,
        timeout=timeout if timeout is not None else dist.default_pg_timeout,
        verbose=False,
    )
