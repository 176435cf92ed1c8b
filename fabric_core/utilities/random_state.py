"""The random number generators of a run, as one stateful object for exact resume.

Put a :class:`RandomState` into the state you save and load::

    state = {"model": model, "optimizer": optimizer, "rng": RandomState(), "data": train_loader}
    fabric.save("last.ckpt", state)  # every process calls it
    fabric.load("last.ckpt", state)  # every process restores its own generators

It captures Python's ``random``, NumPy's global generator (when NumPy is installed), torch's
CPU generator and, when CUDA is available, the generator of every visible CUDA device, at
the moment the checkpoint is written. Each process has its own generators (dropout draws
different masks on every rank), and a single-file checkpoint is written by global rank 0
only, so :meth:`RandomState.state_dict` gathers the states of all processes
(``torch.distributed.all_gather_object``) and :meth:`RandomState.load_state_dict` restores
the entry of this process's global rank. Resuming therefore needs the same world size;
another one is refused with an error that names both.

Everything is stored as tensors, ints, floats and strings, so the checkpoint still loads
with ``weights_only=True``.
"""

from __future__ import annotations

import random
from typing import Any

import torch

__all__ = ["RandomState", "capture_rng_states", "gather_per_rank", "own_rank_entry", "restore_rng_states"]


class RandomState:
    """This process's random number generators, saved and restored by ``fabric.save``/``fabric.load``.

    The object holds nothing itself: ``state_dict()`` reads the generators when called and
    ``load_state_dict()`` sets them, so one instance can be created once and kept in the
    state dict for the whole run. Both must be called on every process together when
    ``torch.distributed`` is initialized (``fabric.save`` and ``fabric.load`` are).
    """

    def state_dict(self) -> dict[str, Any]:
        """``{"world_size": n, "ranks": [states of rank 0, ..., states of rank n-1]}``."""
        ranks = gather_per_rank(capture_rng_states())
        return {"world_size": len(ranks), "ranks": ranks}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore this process's generators from the entry of its global rank."""
        if not isinstance(state_dict, dict) or "ranks" not in state_dict:
            raise ValueError(
                "RandomState.load_state_dict() expects the dict that RandomState.state_dict() returned "
                f"(with 'world_size' and 'ranks'), got {_describe(state_dict)}. Check that the checkpoint key you "
                "load into the RandomState is the one you saved it under."
            )
        restore_rng_states(own_rank_entry(state_dict["ranks"], "RandomState"))

    def __repr__(self) -> str:
        return "RandomState()"


def capture_rng_states() -> dict[str, Any]:
    """The states of this process's generators: ``python``, ``numpy`` (``None`` without NumPy), ``torch``, ``cuda``."""
    return {
        "python": _python_state(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    """Set this process's generators from what :func:`capture_rng_states` returned.

    :raises ValueError: when the CUDA states are for another number of devices than this
        process sees.
    """
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if states.get("numpy") is not None:
        _set_numpy_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    cuda_states = list(states.get("cuda") or [])
    if cuda_states and torch.cuda.is_available():
        visible = torch.cuda.device_count()
        if len(cuda_states) != visible:
            raise ValueError(
                f"The checkpoint holds CUDA random states for {len(cuda_states)} devices, but this process sees "
                f"{visible}. Exact resume needs the same devices: set CUDA_VISIBLE_DEVICES as in the saved run, or "
                "leave the random state out of the state you load and seed with fabric.seed_everything()."
            )
        torch.cuda.set_rng_state_all(cuda_states)


def gather_per_rank(value: Any) -> list[Any]:
    """``value`` of every process, indexed by global rank (``[value]`` when not distributed).

    A collective when ``torch.distributed`` is initialized: every process must call it.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [value]
    gathered: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def own_rank_entry(entries: list[Any], what: str) -> Any:
    """The entry of this process's global rank in a list saved by :func:`gather_per_rank`.

    :param what: the name of the object restoring itself, for the error message.
    :raises ValueError: when the list was saved by another number of processes.
    """
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    world_size = torch.distributed.get_world_size() if distributed else 1
    rank = torch.distributed.get_rank() if distributed else 0
    if len(entries) != world_size:
        raise ValueError(
            f"{what}: the checkpoint was saved by {len(entries)} process(es), but this run has {world_size} "
            f"(world size {len(entries)} -> {world_size}). Each process restores its own state, so an exact "
            f"resume needs the same world size. To continue at world size {world_size}, leave this entry out of "
            "the state you pass to fabric.load (it comes back in the returned remainder)."
        )
    return entries[rank]


def _python_state() -> tuple[int, list[int], float | None]:
    version, internal, gauss = random.getstate()
    return version, list(internal), gauss


def _numpy_state() -> dict[str, Any] | None:
    try:
        import numpy as np
    except ImportError:
        return None
    algorithm, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)  # type: ignore[misc]
    # A tensor, not a NumPy array: the checkpoint must load with weights_only=True.
    return {
        "algorithm": str(algorithm),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(position),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def _set_numpy_state(state: dict[str, Any]) -> None:
    try:
        import numpy as np
    except ImportError:
        return  # saved where NumPy was installed; nothing here can draw from it
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["algorithm"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"]))


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    return f"a {type(value).__name__}"
