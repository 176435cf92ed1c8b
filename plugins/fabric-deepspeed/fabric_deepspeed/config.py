"""The DeepSpeed configuration: Lightning's defaults, a user's config, and what Fabric fills in.

A config comes from one of three places, first found wins:

1. the strategy's ``config=`` argument (a dict, or the path of a JSON file);
2. the file named by ``FABRIC_DEEPSPEED_CONFIG_PATH`` or ``PL_DEEPSPEED_CONFIG_PATH``
   (Lightning's variable);
3. otherwise, one built from the strategy's arguments (:func:`default_config`), as Lightning
   does. A given config replaces these defaults entirely.

Then :func:`resolve_config` fills in what Fabric knows and DeepSpeed needs: the precision
(``fp16``/``bf16`` sections), ``gradient_accumulation_steps`` (1), the micro-batch size
(from the dataloader, else 1) and ``gradient_clipping`` (0: Fabric clips only when
``fabric.clip_gradients`` asks). A field the user set to ``"auto"`` gets the same value.
A value the user set that contradicts Fabric's is an error naming both; nothing is
silently overridden. Nothing here imports deepspeed.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Environment variables naming a config file: fabric-core's, then Lightning's.
CONFIG_PATH_VARIABLES = ("FABRIC_DEEPSPEED_CONFIG_PATH", "PL_DEEPSPEED_CONFIG_PATH")

AUTO = "auto"

#: Precision names and the DeepSpeed section each one enables (``None``: neither).
PRECISION_SECTIONS: dict[str, str | None] = {
    "32-true": None,
    "16-mixed": "fp16",
    "16-true": "fp16",
    "bf16-mixed": "bf16",
    "bf16-true": "bf16",
}

#: ``zero_optimization`` fields that may be ``"auto"`` and are left to DeepSpeed's defaults.
_ZERO_AUTO_TO_DEFAULT = (
    "stage3_prefetch_bucket_size",
    "stage3_param_persistence_threshold",
    "stage3_max_live_parameters",
    "stage3_max_reuse_distance",
    "stage3_gather_16bit_weights_on_model_save",
)


class DeepSpeedConfigError(ValueError):
    """The DeepSpeed config contradicts Fabric's settings, or has a field nobody can fill."""


def load_config(config: str | Path | Mapping[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
    """The user's config as a fresh dict (``None`` when there is none), and where it came from."""
    source = "config="
    if config is None:
        given = {name: os.environ[name] for name in CONFIG_PATH_VARIABLES if os.environ.get(name)}
        if len(set(given.values())) > 1:
            both = " and ".join(f"{name}={value}" for name, value in given.items())
            raise DeepSpeedConfigError(f"{both} name different DeepSpeed config files. Set only one of them.")
        if not given:
            return None, ""
        source, config = next(iter(given.items()))
    if isinstance(config, Mapping):
        return copy.deepcopy(dict(config)), source
    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"The DeepSpeed config file {str(path)!r} (from {source}) does not exist.")
        try:
            loaded = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DeepSpeedConfigError(f"The DeepSpeed config file {str(path)!r} is not valid JSON: {err}") from err
        if not isinstance(loaded, dict):
            raise DeepSpeedConfigError(f"The DeepSpeed config file {str(path)!r} must hold a JSON object.")
        return loaded, f"{source} {path}" if source != "config=" else f"config={str(path)!r}"
    raise TypeError(f"DeepSpeedStrategy(config={config!r}): expected a dict or the path of a JSON file.")


def default_config(
    *,
    zero_optimization: bool,
    zero_allow_untested_optimizer: bool,
    logging_batch_size_per_gpu: int | None,
    partition_activations: bool,
    cpu_checkpointing: bool,
    contiguous_memory_optimization: bool,
    synchronize_checkpoint_boundary: bool,
    offload_optimizer: bool,
    offload_parameters: bool,
    nvme_path: str,
    offload_params_device: str,
    params_buffer_count: int,
    params_buffer_size: int,
    max_in_cpu: int,
    offload_optimizer_device: str,
    optimizer_buffer_count: int,
    pin_memory: bool,
    block_size: int,
    queue_depth: int,
    single_submit: bool,
    overlap_events: bool,
    thread_count: int,
    **zero_kwargs: Any,
) -> dict[str, Any]:
    """The config Lightning builds from ``DeepSpeedStrategy``'s arguments when none is given.

    One difference: ``zero_force_ds_cpu_optimizer`` is off, so that the torch optimizer a
    Fabric user passes to ``fabric.setup`` is used with optimizer offload too (DeepSpeed
    would otherwise refuse anything but its own ``DeepSpeedCPUAdam``, which is faster but
    compiles a C++ extension on first use).
    """
    config: dict[str, Any] = {
        "activation_checkpointing": {
            "partition_activations": partition_activations,
            "cpu_checkpointing": cpu_checkpointing,
            "contiguous_memory_optimization": contiguous_memory_optimization,
            "synchronize_checkpoint_boundary": synchronize_checkpoint_boundary,
        },
        "aio": {
            "block_size": block_size,
            "queue_depth": queue_depth,
            "single_submit": single_submit,
            "overlap_events": overlap_events,
            "thread_count": thread_count,
        },
    }
    if zero_optimization:
        zero_config = dict(zero_kwargs)
        if offload_optimizer:
            zero_config["offload_optimizer"] = {
                "device": offload_optimizer_device,
                "nvme_path": nvme_path,
                "buffer_count": optimizer_buffer_count,
                "pin_memory": pin_memory,
            }
        if offload_parameters:
            zero_config["offload_param"] = {
                "device": offload_params_device,
                "nvme_path": nvme_path,
                "buffer_count": params_buffer_count,
                "buffer_size": params_buffer_size,
                "max_in_cpu": max_in_cpu,
                "pin_memory": pin_memory,
            }
        config = {
            "zero_allow_untested_optimizer": zero_allow_untested_optimizer,
            "zero_force_ds_cpu_optimizer": False,
            "zero_optimization": zero_config,
            **config,
        }
    if logging_batch_size_per_gpu:
        config["train_micro_batch_size_per_gpu"] = logging_batch_size_per_gpu
    return config


def zero_stage(config: Mapping[str, Any]) -> int:
    """The ZeRO stage a config asks for (0 when ZeRO is off)."""
    zero = config.get("zero_optimization")
    if isinstance(zero, Mapping):
        stage = zero.get("stage", 0)
        return int(stage) if isinstance(stage, (int, str)) and str(stage).isdigit() else 0
    return 0


def enabled_precision_sections(config: Mapping[str, Any]) -> dict[str, Any]:
    """``{"fp16": value, "bf16": value}`` of each section's ``enabled`` as the user wrote it."""
    found: dict[str, Any] = {}
    for section, keys in (("fp16", ("fp16",)), ("bf16", ("bf16", "bfloat16"))):
        for key in keys:
            value = config.get(key)
            if isinstance(value, Mapping) and "enabled" in value:
                found[section] = value["enabled"]
    return found


def _describe(source: str) -> str:
    return f"the DeepSpeed config ({source})" if source else "the DeepSpeed config"


def check_precision(config: Mapping[str, Any], precision: str, source: str = "") -> None:
    """Raise :class:`DeepSpeedConfigError` when the config's fp16/bf16 sections contradict ``precision``."""
    wanted = PRECISION_SECTIONS.get(precision)
    for section, enabled in enabled_precision_sections(config).items():
        if enabled == AUTO:
            continue
        if enabled is True and section != wanted:
            fix = f"precision='{'16-mixed' if section == 'fp16' else 'bf16-mixed'}'"
            raise DeepSpeedConfigError(
                f"{_describe(source)} has {section}.enabled=true, but Fabric runs with precision={precision!r}. "
                f'Choose one: set {fix} (or leave {section}.enabled as "auto"), or remove the {section} section '
                "from the config."
            )
        if enabled is False and section == wanted:
            raise DeepSpeedConfigError(
                f"{_describe(source)} has {section}.enabled=false, but Fabric runs with precision={precision!r}, "
                f'which DeepSpeed implements with its {section} mode. Set {section}.enabled to true or "auto", or '
                "choose precision='32-true'."
            )


def resolve_config(
    config: Mapping[str, Any],
    *,
    precision: str,
    micro_batch_size: int | None,
    loss_scaling: Mapping[str, Any],
    zero_defaults: Mapping[str, Any],
    source: str = "",
) -> dict[str, Any]:
    """A copy of ``config`` with Fabric's values in every field DeepSpeed needs.

    :param precision: Fabric's precision name (``"32-true"``, ``"bf16-mixed"``, ...).
    :param micro_batch_size: the batch size of the first dataloader set up, if known.
    :param loss_scaling: ``loss_scale``, ``initial_scale_power``, ... for an fp16 section.
    :param zero_defaults: values for ``"auto"`` fields of ``zero_optimization`` (bucket sizes).
    """
    check_precision(config, precision, source)
    resolved = copy.deepcopy(dict(config))

    # Precision: DeepSpeed's own fp16/bf16 mode, or neither.
    wanted = PRECISION_SECTIONS[precision]
    if "bfloat16" in resolved and "bf16" not in resolved:
        resolved["bf16"] = resolved.pop("bfloat16")
    for section in ("fp16", "bf16"):
        part = resolved.get(section)
        if section != wanted and not isinstance(part, Mapping):
            continue
        part = dict(part) if isinstance(part, Mapping) else {}
        if section == wanted:
            part["enabled"] = True
        elif part.get("enabled") == AUTO:
            part["enabled"] = False
        if section == "fp16":
            for key, value in loss_scaling.items():
                if part.get(key, AUTO) == AUTO:
                    part[key] = value
        resolved[section] = part

    # Batch sizes and accumulation: Fabric's loop steps once per optimizer.step().
    if resolved.get("gradient_accumulation_steps", AUTO) == AUTO:
        resolved["gradient_accumulation_steps"] = 1
    if resolved.get("train_batch_size") == AUTO:
        del resolved["train_batch_size"]
    micro = resolved.get("train_micro_batch_size_per_gpu")
    if micro == AUTO or (micro is None and "train_batch_size" not in resolved):
        resolved["train_micro_batch_size_per_gpu"] = micro_batch_size or 1
    if resolved.get("gradient_clipping", AUTO) == AUTO:
        resolved["gradient_clipping"] = 0.0

    zero = resolved.get("zero_optimization")
    if isinstance(zero, Mapping):
        zero = dict(zero)
        for key, value in zero_defaults.items():
            if zero.get(key) == AUTO:
                zero[key] = value
        for key in _ZERO_AUTO_TO_DEFAULT:
            if zero.get(key) == AUTO:
                del zero[key]
        resolved["zero_optimization"] = zero

    left = list(_auto_fields(resolved))
    if left:
        raise DeepSpeedConfigError(
            f'{_describe(source)} has "auto" in {", ".join(left)}, which fabric-deepspeed cannot fill in: it '
            "fills the precision sections, train_micro_batch_size_per_gpu, train_batch_size, "
            "gradient_accumulation_steps, gradient_clipping, the fp16 loss scaling, the ZeRO bucket sizes and the "
            "stage3_* tuning fields. Write a value for each of these fields."
        )
    return resolved


def _auto_fields(config: Mapping[str, Any], prefix: str = "") -> list[str]:
    found = []
    for key, value in config.items():
        path = f"{prefix}{key}"
        if value == AUTO:
            found.append(path)
        elif isinstance(value, Mapping):
            found.extend(_auto_fields(value, prefix=f"{path}."))
    return found
