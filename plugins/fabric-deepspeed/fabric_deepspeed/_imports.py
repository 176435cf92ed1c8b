"""Importing deepspeed once, for the right device, with an error that says how to fix it.

DeepSpeed picks its accelerator when it is first asked for one, from the ``DS_ACCELERATOR``
variable or by probing (on a machine without a GPU it falls back to the CPU with a warning,
and its CPU defaults want oneCCL or mpi4py). fabric-deepspeed knows the device already, so
it sets ``DS_ACCELERATOR`` before the import, and tells deepspeed directly when it was
imported earlier for another device.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

#: fabric-core accelerator names and the DeepSpeed accelerator each one needs.
DEEPSPEED_ACCELERATORS: dict[str, str] = {"cpu": "cpu", "cuda": "cuda"}


class DeepSpeedNotAvailableError(ImportError):
    """fabric-deepspeed is installed, but the deepspeed package is missing or fails to import."""


def import_deepspeed(strategy_name: str = "deepspeed") -> ModuleType:
    """``import deepspeed``, or raise :class:`DeepSpeedNotAvailableError` naming the fix.

    The original exception is chained, so a broken installation shows its own traceback.
    """
    try:
        return importlib.import_module("deepspeed")
    except Exception as err:
        missing = isinstance(err, ModuleNotFoundError) and (err.name or "").split(".")[0] == "deepspeed"
        what = "is not installed" if missing else f"failed to import ({type(err).__name__}: {err})"
        raise DeepSpeedNotAvailableError(
            f"strategy={strategy_name!r} runs on DeepSpeed, but the deepspeed package {what}. "
            "fabric-deepspeed is installed without a working deepspeed: pip install deepspeed"
            + ("" if missing else " (or pip install --force-reinstall deepspeed)")
        ) from err


def use_accelerator(accelerator: str, strategy_name: str = "deepspeed") -> ModuleType:
    """Make DeepSpeed run on ``accelerator`` (``"cpu"`` or ``"cuda"``), then return ``deepspeed``.

    :raises ValueError: when ``DS_ACCELERATOR`` is set to another device than the one asked
        for, naming both.
    """
    wanted = DEEPSPEED_ACCELERATORS[accelerator]
    given = os.environ.get("DS_ACCELERATOR")
    if given is not None and given != wanted:
        raise ValueError(
            f"strategy={strategy_name!r} with accelerator={accelerator!r} needs DeepSpeed's {wanted!r} accelerator, "
            f"but the environment sets DS_ACCELERATOR={given}. Unset DS_ACCELERATOR (fabric-deepspeed sets it from "
            f"the accelerator), or choose accelerator={given!r}."
        )
    os.environ["DS_ACCELERATOR"] = wanted
    deepspeed = import_deepspeed(strategy_name)
    from deepspeed.accelerator import real_accelerator

    # Imported earlier (by the user, or another Fabric) for a different device: tell it.
    current = real_accelerator.ds_accelerator
    if current is not None and current.device_name() != wanted:
        if wanted == "cpu":
            from deepspeed.accelerator.cpu_accelerator import CPU_Accelerator

            real_accelerator.set_accelerator(CPU_Accelerator())
        else:
            from deepspeed.accelerator.cuda_accelerator import CUDA_Accelerator

            real_accelerator.set_accelerator(CUDA_Accelerator())
    return deepspeed
