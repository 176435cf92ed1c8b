"""What a ``Fabric(strategy="deepspeed*", ...)`` runs, and what it refuses before anything starts.

In the order ``Fabric(...)`` meets them: the name the settings stand for
(:func:`registered_name`, for messages); the precision chosen by name becomes a
:class:`~fabric_deepspeed.precision.DeepSpeedPrecision` (:func:`deepspeed_precision`); then
:func:`check_runnable` refuses what cannot run, naming both sides (an accelerator DeepSpeed
has no backend for, a precision DeepSpeed does not do, float16 on the CPU, a config that
contradicts ``precision=``, NVMe offloading without DeepSpeed's async_io extension) and
imports deepspeed for the right device, or says ``pip install deepspeed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fabric_core.precision.amp import MixedPrecision
from fabric_core.precision.dtype import HalfPrecision
from fabric_core.precision.precision import Precision

from fabric_deepspeed import STRATEGIES
from fabric_deepspeed._imports import DEEPSPEED_ACCELERATORS, use_accelerator
from fabric_deepspeed.config import check_precision
from fabric_deepspeed.precision import DeepSpeedPrecision

#: The precision names DeepSpeed runs.
PRECISIONS: tuple[str, ...] = ("32-true", "bf16-mixed", "bf16-true", "16-mixed", "16-true")

#: Precision classes of fabric-core whose names DeepSpeed implements itself.
_TRANSLATABLE = (Precision, MixedPrecision, HalfPrecision)

#: ``DeepSpeedStrategy``'s defaults for the arguments the registered names set.
_NAMED_DEFAULTS: dict[str, Any] = {
    "stage": 2,
    "offload_optimizer": False,
    "offload_parameters": False,
    "remote_device": None,
    "offload_params_device": "cpu",
    "offload_optimizer_device": "cpu",
}


def registered_name(settings: Mapping[str, Any], config_from_user: bool) -> str:
    """The registered name ``settings`` stand for (``"deepspeed_stage_3_offload"``); ``"deepspeed"`` with a config."""
    if config_from_user:
        return "deepspeed"
    # Most specific first, so that stage 2 with nothing else is "deepspeed_stage_2".
    for candidate in list(STRATEGIES)[::-1]:
        wanted = {**_NAMED_DEFAULTS, **STRATEGIES[candidate][0]}
        if all(settings[key] == value for key, value in wanted.items()):
            return candidate
    return f"DeepSpeedStrategy(stage={settings['stage']})"


def deepspeed_precision(precision: Precision | None) -> Precision | None:
    """The precision fabric-core chose by name, as DeepSpeed runs it; any other plugin unchanged."""
    if type(precision) in _TRANSLATABLE and precision is not None and precision.precision in PRECISIONS:
        return DeepSpeedPrecision(precision.precision)
    return precision


def uses_nvme(config: Mapping[str, Any], remote_device: str | None) -> bool:
    """Whether ``config`` (or ``remote_device``) offloads parameters or optimizer state to NVMe."""
    zero = config.get("zero_optimization")
    devices = [remote_device]
    if isinstance(zero, dict):
        devices += [
            part.get("device")
            for part in (zero.get("offload_param"), zero.get("offload_optimizer"))
            if isinstance(part, dict)
        ]
    return "nvme" in devices


def check_runnable(
    name: str, accelerator: str, precision: Precision, config: Mapping[str, Any], config_source: str, nvme: bool
) -> Any:
    """Refuse what cannot run on ``accelerator`` with ``precision``; return ``deepspeed``, imported for the device.

    :param name: the strategy's name, for messages.
    :param config_source: where the user's config came from, for messages (``""`` for the default one).
    :param nvme: whether the run offloads to NVMe.
    """
    if accelerator not in DEEPSPEED_ACCELERATORS:
        raise ValueError(
            f"strategy={name!r} cannot run on accelerator={accelerator!r}: fabric-deepspeed runs DeepSpeed on "
            f"{' and '.join(map(repr, DEEPSPEED_ACCELERATORS))} only. Use accelerator='cuda' or 'cpu', or "
            "another strategy."
        )
    if not isinstance(precision, DeepSpeedPrecision):
        raise ValueError(
            f"precision={precision.precision!r} ({type(precision).__name__}) cannot run with "
            f"strategy={name!r}: DeepSpeed does precision itself, through its fp16 and bf16 modes, and "
            f"supports {', '.join(map(repr, PRECISIONS))}. Choose one of those."
        )
    if accelerator == "cpu" and precision.deepspeed_section == "fp16":
        raise ValueError(
            f"precision={precision.precision!r} cannot run with strategy={name!r} on accelerator='cpu': "
            "DeepSpeed refuses float16 on the CPU (its fp16 mode and loss scaler need a GPU). On the CPU use "
            "precision='bf16-mixed' (or 'bf16-true', '32-true'); for float16 use accelerator='cuda'."
        )
    check_precision(config, precision.precision, config_source)
    deepspeed = use_accelerator(accelerator, name)
    if nvme:
        from deepspeed import ops

        if not ops.__compatible_ops__.get("async_io", False):
            raise RuntimeError(
                f"strategy={name!r} offloads to NVMe, which needs DeepSpeed's async_io extension, and it "
                "cannot be built on this machine (it needs the libaio library: apt-get install libaio-dev, then "
                "pip install --force-reinstall deepspeed). Offload to the CPU instead: "
                "strategy='deepspeed_stage_3_offload'."
            )
    return deepspeed
