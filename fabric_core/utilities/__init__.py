"""Small helpers shared by the core and its plugins.

Every name of Lightning Fabric's ``lightning.fabric.utilities`` is importable from here,
lazily (on first use), and its public submodules have the same paths: ``seed``,
``apply_func``, ``rank_zero``, ``distributed``, ``data``, ``throughput``, ``init``, ``load``,
``types``, ``enums``, ``warnings`` and ``cloud_io``. :class:`RandomState` (``random_state``) is
fabric-core's own: the run's random generators for exact resume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabric_core._lazy import lazy_attributes

if TYPE_CHECKING:
    from fabric_core.utilities.apply_func import (
        apply_to_collection,
        convert_tensors_to_scalars,
        move_data_to_device,
    )
    from fabric_core.utilities.data import AttributeDict, suggested_max_num_workers
    from fabric_core.utilities.distributed import is_shared_filesystem
    from fabric_core.utilities.enums import LightningEnum
    from fabric_core.utilities.random_state import RandomState
    from fabric_core.utilities.rank_zero import (
        rank_zero_deprecation,
        rank_zero_info,
        rank_zero_only,
        rank_zero_warn,
    )
    from fabric_core.utilities.seed import seed_everything
    from fabric_core.utilities.throughput import Throughput, ThroughputMonitor, measure_flops
    from fabric_core.utilities.warnings import disable_possible_user_warnings

__all__ = [
    "AttributeDict",
    "LightningEnum",
    "RandomState",
    "Throughput",
    "ThroughputMonitor",
    "apply_to_collection",
    "convert_tensors_to_scalars",
    "disable_possible_user_warnings",
    "is_shared_filesystem",
    "measure_flops",
    "move_data_to_device",
    "rank_zero_deprecation",
    "rank_zero_info",
    "rank_zero_only",
    "rank_zero_warn",
    "seed_everything",
    "suggested_max_num_workers",
]

_WHERE = {
    "apply_to_collection": "apply_func",
    "convert_tensors_to_scalars": "apply_func",
    "move_data_to_device": "apply_func",
    "AttributeDict": "data",
    "suggested_max_num_workers": "data",
    "is_shared_filesystem": "distributed",
    "LightningEnum": "enums",
    "RandomState": "random_state",
    "rank_zero_deprecation": "rank_zero",
    "rank_zero_info": "rank_zero",
    "rank_zero_only": "rank_zero",
    "rank_zero_warn": "rank_zero",
    "seed_everything": "seed",
    "Throughput": "throughput",
    "ThroughputMonitor": "throughput",
    "measure_flops": "throughput",
    "disable_possible_user_warnings": "warnings",
}

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {name: f"fabric_core.utilities.{module}:{name}" for name, module in _WHERE.items()},
)
