"""Seeding every random number generator a training run uses."""

from __future__ import annotations

import os
import random
from typing import Any

import torch

_MIN_SEED = 0
_MAX_SEED = 2**32 - 1


def seed_everything(seed: int | float | None = None, workers: bool = False, verbose: bool = True) -> int:
    """Seed ``random``, NumPy and torch (all devices) with ``seed`` and return it.

    The seed also fixes the order in which ``fabric.setup_dataloaders``' distributed
    samplers shuffle (the same order as Lightning Fabric for the same seed).

    :param seed: the seed: an int, or a float with an integral value (``42.0``); ``None``
        reads ``PL_GLOBAL_SEED`` or, when unset, uses 0 with a warning.
    :param workers: also seed DataLoader workers distinctly per rank and worker: Fabric's
        ``setup_dataloaders`` then installs :func:`pl_worker_init_function` (the choice is
        kept in ``PL_SEED_WORKERS`` so spawned processes see it).
    :param verbose: record "Seed set to N" in fabric-core's log (shown with ``FABRIC_LOG_LEVEL=info``).
    """
    from fabric_core._logging import get_logger

    log = get_logger(__name__)
    if seed is None:
        env_seed = os.environ.get("PL_GLOBAL_SEED")
        if env_seed is None:
            seed = 0
            log.warning("No seed found, seed set to 0: pass one to seed_everything(seed) for reproducible runs")
        else:
            try:
                seed = int(env_seed)
            except ValueError:
                raise ValueError(
                    f"seed_everything(): PL_GLOBAL_SEED={env_seed!r} is not an integer seed. Set it to a whole number "
                    f"from {_MIN_SEED} to {_MAX_SEED}, or unset it."
                ) from None
    seed = _as_int_seed(seed)
    if not _MIN_SEED <= seed <= _MAX_SEED:
        raise ValueError(
            f"seed_everything(seed={seed}): the seed must be between {_MIN_SEED} and {_MAX_SEED} (NumPy's range)."
        )
    if verbose:
        log.info(f"Seed set to {seed}", seed=seed)
    import numpy as np  # imported here: numpy costs tens of milliseconds at import

    os.environ["PL_GLOBAL_SEED"] = str(seed)
    os.environ["PL_SEED_WORKERS"] = str(int(workers))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def _as_int_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, float)):
        raise TypeError(f"seed_everything(seed={seed!r}): the seed must be an int, got {type(seed).__name__}.")
    if isinstance(seed, float):
        if not seed.is_integer():
            raise ValueError(
                f"seed_everything(seed={seed!r}): the seed must be a whole number; {seed!r} would be truncated. Pass "
                f"{int(seed)} if that is what you meant."
            )
        seed = int(seed)
    return int(seed)


def reset_seed() -> None:
    """Seed everything again with the seed and worker setting of the last :func:`seed_everything` call.

    Does nothing when ``seed_everything`` was never called (``PL_GLOBAL_SEED`` unset).
    Spawned processes call it so they start from the same seed as the main process.
    """
    seed = os.environ.get("PL_GLOBAL_SEED")
    if seed is None:
        return
    workers = os.environ.get("PL_SEED_WORKERS", "0") == "1"
    seed_everything(int(seed), workers=workers, verbose=False)


def sampler_seed() -> int:
    """The seed distributed samplers shuffle with: the global seed, or 0 when none was set."""
    try:
        return int(os.environ.get("PL_GLOBAL_SEED", "0"))
    except ValueError:
        return 0


def worker_init_function(worker_id: int, rank: int | None = None) -> None:
    """Give each DataLoader worker its own seeds, derived from the base seed, rank and worker id.

    The derivation is Lightning Fabric's, so a script's worker randomness (random
    augmentations in a dataset) is the same under both: torch's and Python's seeds come
    from a 64-bit linear congruential sequence started at the three numbers packed into
    one, NumPy's from a ``SeedSequence`` of them.
    """
    import numpy as np

    from fabric_core.utilities.rank_zero import rank_zero_only

    global_rank = rank if rank is not None else rank_zero_only.rank  # type: ignore[attr-defined]
    base_seed = torch.initial_seed() - worker_id  # torch gives worker k the seed base + k
    torch_seed, python_high, python_low = _congruential_seeds((base_seed << 32) | (worker_id << 16) | global_rank, 3)
    torch.manual_seed(torch_seed)
    random.seed((python_high << 32) | python_low)
    np.random.seed(np.random.SeedSequence([base_seed, worker_id, global_rank]).generate_state(4))


def _congruential_seeds(state: int, count: int) -> list[int]:
    """``count`` numbers of the 64-bit LCG ``x -> a * x + 1 mod 2**64`` (Knuth's MMIX multiplier) after ``state``."""
    seeds = []
    for _ in range(count):
        state = (state * 6364136223846793005 + 1) % 2**64
        seeds.append(state)
    return seeds


#: Lightning's name for :func:`worker_init_function`.
pl_worker_init_function = worker_init_function
