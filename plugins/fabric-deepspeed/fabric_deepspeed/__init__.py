"""fabric-deepspeed: DeepSpeed ZeRO strategies for fabric-core.

This module is the add-on's entry point (``[project.entry-points.fabric_core] deepspeed =
"fabric_deepspeed"``). fabric-core imports it during discovery, in every process, so it
imports only ``fabric_core`` and the standard library: the strategy lives in
:mod:`fabric_deepspeed.strategy`, named by a ``"module:Class"`` string and imported only when
a run selects one of the names below, and deepspeed itself is imported only then.
"""

from __future__ import annotations

from typing import Any

from fabric_core.commands import Commands
from fabric_core.hookspecs import hookimpl
from fabric_core.registry import Registry

__version__ = "0.1.0"

_STRATEGY = "fabric_deepspeed.strategy:DeepSpeedStrategy"

#: Every strategy name this add-on registers, with the DeepSpeedStrategy arguments it stands for.
STRATEGIES: dict[str, tuple[dict[str, Any], str]] = {
    "deepspeed": ({}, "DeepSpeed with its default settings (ZeRO stage 2)"),
    "deepspeed_stage_1": ({"stage": 1}, "DeepSpeed ZeRO stage 1: optimizer state sharded"),
    "deepspeed_stage_2": ({"stage": 2}, "DeepSpeed ZeRO stage 2: optimizer state and gradients sharded"),
    "deepspeed_stage_3": ({"stage": 3}, "DeepSpeed ZeRO stage 3: optimizer state, gradients and parameters sharded"),
    "deepspeed_stage_1_offload": (
        {"stage": 1, "offload_optimizer": True},
        "DeepSpeed ZeRO stage 1, optimizer state and step on the CPU",
    ),
    "deepspeed_stage_2_offload": (
        {"stage": 2, "offload_optimizer": True},
        "DeepSpeed ZeRO stage 2, optimizer state and step on the CPU",
    ),
    "deepspeed_stage_3_offload": (
        {"stage": 3, "offload_optimizer": True, "offload_parameters": True},
        "DeepSpeed ZeRO stage 3, optimizer state and parameters offloaded to the CPU",
    ),
    "deepspeed_stage_3_offload_nvme": (
        {
            "stage": 3,
            "offload_optimizer": True,
            "offload_parameters": True,
            "remote_device": "nvme",
            "offload_params_device": "nvme",
            "offload_optimizer_device": "nvme",
        },
        "DeepSpeed ZeRO stage 3, optimizer state and parameters offloaded to NVMe (nvme_path)",
    ),
}


@hookimpl
def fabric_register_strategies(registry: Registry) -> None:
    for name, (init_params, description) in STRATEGIES.items():
        registry.add(name, _STRATEGY, init_params=init_params, description=description)


@hookimpl
def fabric_register_commands(commands: Commands) -> None:
    # `fabric consolidate DIR` hands a DeepSpeed folder to fabric_deepspeed.cli (imported only then).
    commands.add_checkpoint_format(
        "deepspeed",
        detect="fabric_deepspeed.cli:is_deepspeed_checkpoint",
        consolidate="fabric_deepspeed.cli:consolidate_command",
        arguments="fabric_deepspeed.cli:add_consolidate_arguments",
        description="a DeepSpeed checkpoint folder (fabric.save with strategy='deepspeed*')",
    )


__all__ = ["STRATEGIES", "__version__", "fabric_register_commands", "fabric_register_strategies"]
