"""Small helpers shared by the core and its plugins."""

from fabric_core.utilities.apply_func import (
    apply_to_collection,
    convert_tensors_to_scalars,
    move_data_to_device,
)
from fabric_core.utilities.rank_zero import rank_zero_only
from fabric_core.utilities.seed import seed_everything

__all__ = [
    "apply_to_collection",
    "convert_tensors_to_scalars",
    "move_data_to_device",
    "rank_zero_only",
    "seed_everything",
]
