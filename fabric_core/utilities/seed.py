"""Seeding every random number generator a training run uses."""

from __future__ import annotations

import os
import random

import torch

_MAX_SEED = 2**32 - 1


def seed_everything(seed: int | None = None, workers: bool = False, verbose: bool = True) -> int:
    """Seed ``random``, NumPy and torch (all devices) with ``seed`` and return it.

    :param seed: the seed; ``None`` reads ``PL_GLOBAL_SEED`` or falls back to 0.
    :param workers: also seed DataLoader workers distinctly per rank and worker: Fabric's
        ``setup_dataloaders`` then installs :func:`worker_init_function` (the choice is
        kept in ``PL_SEED_WORKERS`` so spawned processes see it).
    """
    if seed is None:
        env_seed = os.environ.get("PL_GLOBAL_SEED")
        seed = int(env_seed) if env_seed is not None else 0
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed_everything(seed={seed!r}): the seed must be an int.")
    if not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"seed_everything(seed={seed}): the seed must be between 0 and {_MAX_SEED}.")
    if verbose:
        from fabric_core._logging import get_logger

        get_logger(__name__).info("seed set", seed=seed)
    import numpy as np  # imported here: numpy costs tens of milliseconds at import

    os.environ["PL_GLOBAL_SEED"] = str(seed)
    os.environ["PL_SEED_WORKERS"] = str(int(workers))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def worker_init_function(worker_id: int, rank: int | None = None) -> None:
    """Give each DataLoader worker its own seed derived from the base seed, rank and worker id."""
    import numpy as np

    from fabric_core.utilities.rank_zero import rank_zero_only

    global_rank = rank if rank is not None else rank_zero_only.rank  # type: ignore[attr-defined]
    base_seed = torch.initial_seed() - worker_id
    sequence = np.random.SeedSequence([base_seed, worker_id, global_rank])
    torch_seed, numpy_seed, python_seed = sequence.generate_state(3, dtype=np.uint64)
    torch.manual_seed(int(torch_seed))
    np.random.seed(int(numpy_seed) % (_MAX_SEED + 1))
    random.seed(int(python_seed))
