"""The files of a fabric-deepspeed checkpoint folder, and reading them without running code.

Which tag folder holds which model (:func:`read_metadata`), where a tag's model states are
(:func:`model_states_file`), the keys DeepSpeed writes there itself (:data:`RESERVED_KEYS`),
and the safe way to read them: DeepSpeed's own loader unpickles everything, so
:func:`check_safe` scans a file's pickle before DeepSpeed reads it, and
:func:`load_model_states` reads one through torch's restricted unpickler. Both refuse a file
that holds code with fabric-core's :class:`~fabric_core.checkpoint_io.UnsafeCheckpointError`,
worded as for every other format. ``fabric consolidate`` (:mod:`fabric_deepspeed.cli`) reads
through this module only, so it never imports the strategy.
"""

from __future__ import annotations

import importlib
import json
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from fabric_core.checkpoint_io import damaged, holds_code, refusal

#: The file naming the tags of a fabric-deepspeed checkpoint directory.
METADATA_FILE = "fabric_deepspeed.json"
#: The tag of the only model of a checkpoint (Lightning's choice too).
SINGLE_TAG = "checkpoint"

#: Keys of DeepSpeed's model-states file: a client-state key among them would be lost.
RESERVED_KEYS: frozenset[str] = frozenset(
    {
        "module",
        "buffer_names",
        "optimizer",
        "param_shapes",
        "frozen_param_shapes",
        "shared_params",
        "frozen_param_fragments",
        "lr_scheduler",
        "data_sampler",
        "random_ltd",
        "sparse_tensor_module_names",
        "skipped_steps",
        "global_steps",
        "global_samples",
        "dp_world_size",
        "mp_world_size",
        "ds_config",
        "ds_version",
        "checkpoint_parallel_dimensions",
        "universal_checkpoint_info",
        "ds_autoep_layers",
        "autoep_layers",
        "num_experts",
    }
)

#: DeepSpeed's own classes in its checkpoint files: plain data holders, loaded with weights_only=True too.
DEEPSPEED_CHECKPOINT_GLOBALS: frozenset[str] = frozenset(
    {
        "deepspeed.runtime.fp16.loss_scaler.LossScaler",
        "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler",
        "deepspeed.runtime.zero.config.ZeroStageEnum",
        "deepspeed.runtime.zero.offload_config.OffloadDeviceEnum",
        "deepspeed.utils.tensor_fragment.fragment_address",
    }
)


def read_metadata(path: Path) -> dict[str, Any]:
    """The tags of a checkpoint directory: from fabric_deepspeed.json, else DeepSpeed's ``latest`` file."""
    metadata_file = path / METADATA_FILE
    if metadata_file.is_file():
        metadata: dict[str, Any] = json.loads(metadata_file.read_text())
        return metadata
    latest = path / "latest"
    tag = latest.read_text().strip() if latest.is_file() else SINGLE_TAG
    if not (path / tag).is_dir():
        raise FileNotFoundError(
            f"{str(path)!r} is a folder, but not a DeepSpeed checkpoint: it has no {METADATA_FILE}, no 'latest' "
            f"file and no {tag!r} folder."
        )
    return {"format": 0, "tags": None, "client_state": tag}


def model_states_file(path: Path, tag: str) -> Path:
    """The model-states file of ``tag`` in the checkpoint directory ``path`` (rank 0 writes it)."""
    files = sorted((path / tag).glob("*model_states.pt"))
    if not files:
        raise FileNotFoundError(f"The DeepSpeed checkpoint {str(path)!r} has no model-states file in {tag!r}.")
    return files[0]


def check_safe(files: Iterable[Path]) -> None:
    """Refuse files holding pickled objects that ``torch.load(weights_only=True)`` would not load.

    DeepSpeed's own loader unpickles everything; this scan reads only each file's pickle
    header, not its tensors. DeepSpeed's own data classes (:data:`DEEPSPEED_CHECKPOINT_GLOBALS`)
    are allowed. A refused file raises fabric-core's :class:`~fabric_core.checkpoint_io.UnsafeCheckpointError`,
    worded as for every other format.
    """
    from torch.serialization import get_unsafe_globals_in_checkpoint

    for file in files:
        try:
            unsafe = set(get_unsafe_globals_in_checkpoint(file)) - DEEPSPEED_CHECKPOINT_GLOBALS
        except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
            raise damaged(file, err) from err
        if unsafe:
            raise holds_code(file, sorted(unsafe)[0])


def load_model_states(file: Path, weights_only: bool) -> dict[str, Any]:
    """Read a model-states file; with ``weights_only`` through torch's restricted unpickler.

    Only tensors, plain values and DeepSpeed's own data classes load; a file holding anything
    else raises :class:`~fabric_core.checkpoint_io.UnsafeCheckpointError` and nothing in it runs.
    """
    if not weights_only:
        return torch.load(file, map_location="cpu", weights_only=False)  # type: ignore[no-any-return]
    try:
        with torch.serialization.safe_globals(_deepspeed_classes()):
            loaded = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise refusal(file, err) from err
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        raise damaged(file, err) from err
    return dict(loaded)


def _deepspeed_classes() -> list[Any]:
    """The classes named in :data:`DEEPSPEED_CHECKPOINT_GLOBALS` that this DeepSpeed version has."""
    found = []
    for name in sorted(DEEPSPEED_CHECKPOINT_GLOBALS):
        module_name, _, attribute = name.rpartition(".")
        try:
            found.append(getattr(importlib.import_module(module_name), attribute))
        except (ImportError, AttributeError):
            continue  # an older or newer DeepSpeed without it: its files do not hold it either
    return found
