"""``fabric.save`` and ``fabric.load`` through DeepSpeed's engines.

A checkpoint of a state that holds DeepSpeed models is a **directory** written by
``engine.save_checkpoint`` on every rank (each rank writes its ZeRO shards; rank 0 the model
states). The rest of the user's state (plain values, schedulers, other stateful objects)
travels as DeepSpeed's *client state* inside the model-states file. Layout::

    path/
      fabric_deepspeed.json      which tag holds which model, and the client state
      latest                     DeepSpeed's pointer to the last tag written
      checkpoint/                one tag per model: "checkpoint" when the state holds one
        mp_rank_00_model_states.pt
        zero_pp_rank_0_mp_rank_00_optim_states.pt ...
      zero_to_fp32.py            DeepSpeed's own consolidation script

With several models (a GAN), each gets the tag ``checkpoint-<key>``, after its key in the
state. Saving and loading are made of fabric-core's checkpoint toolkit
(:mod:`fabric_core.strategies.checkpoint_state`): the ranks write a hidden staging folder
beside ``path``; once all of them are done, rank 0 writes ``fabric_manifest.json`` (sizes and
checksums of every file) and swaps the folder into place (``save_directory``); a load recovers
a path left missing by a crash mid-swap, checks the manifest before it restores anything
(``verify_directory``) and restores the client state with ``check_missing``/``restore_into``.
A state without any DeepSpeed model is saved as one file (``save_file``), as the DDP strategy
does.

A user key that DeepSpeed uses itself (``module``, ``optimizer``, ``global_steps``, ...) is
refused: DeepSpeed would overwrite it, or drop it on load. Loading reads with DeepSpeed's
loader, so with ``weights_only=True`` (the default) the files are first scanned for pickled
objects that ``torch.load(weights_only=True)`` would refuse.
"""

from __future__ import annotations

import importlib
import json
import pickle
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from fabric_core.checkpoint_io import damaged, holds_code, refusal
from fabric_core.strategies.checkpoint_state import (
    check_missing,
    load_file,
    restore_into,
    save_directory,
    save_file,
    verify_directory,
)
from fabric_core.utilities.remote_paths import is_remote, refuse_remote
from torch.nn import Module
from torch.optim import Optimizer

if TYPE_CHECKING:
    from fabric_deepspeed.engines import EngineRecord
    from fabric_deepspeed.strategy import DeepSpeedStrategy

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


class CheckpointKeyError(ValueError):
    """A key of the user's state collides with a key DeepSpeed keeps in its checkpoint."""


# -- saving ---------------------------------------------------------------------------------------


def _engines_in(strategy: DeepSpeedStrategy, state: dict[str, Any]) -> list[tuple[str, EngineRecord]]:
    found = []
    for key, obj in state.items():
        if isinstance(obj, Module):
            for record in strategy.records:
                if obj is record.module or obj is record.engine:
                    found.append((key, record))
    return found


def _tags(engines: list[tuple[str, EngineRecord]]) -> dict[str, str]:
    if len(engines) == 1:
        return {engines[0][0]: SINGLE_TAG}
    tags: dict[str, str] = {}
    for key, _ in engines:
        tag = f"{SINGLE_TAG}-{re.sub(r'[^A-Za-z0-9_.-]', '_', key)}"
        if tag in tags.values():
            raise ValueError(f"fabric.save(): the state keys of two models both become the folder name {tag!r}.")
        tags[key] = tag
    return tags


def _client_state(
    strategy: DeepSpeedStrategy, state: dict[str, Any], engines: list[tuple[str, EngineRecord]]
) -> dict[str, Any]:
    """Everything but the models and their optimizers, as plain values and state dicts."""
    models = {key for key, _ in engines}
    client: dict[str, Any] = {}
    for key, obj in state.items():
        if key in models:
            continue
        if any(record.owns(obj) for _, record in engines):
            continue  # the engine saves it, partitioned as ZeRO keeps it
        if any(record.owns(obj) for record in strategy.records):
            raise ValueError(
                f"fabric.save(): state[{key!r}] is the optimizer of a DeepSpeed model that is not in the state. "
                "DeepSpeed saves an optimizer together with its model: add the model to the state too."
            )
        client[key] = obj
    converted = strategy.convert_state(client)
    collisions = sorted(set(converted) & RESERVED_KEYS)
    if collisions:
        raise CheckpointKeyError(
            f"fabric.save(): the state keys {collisions} are also keys DeepSpeed writes into its checkpoint, so "
            f"DeepSpeed would overwrite them or drop them on load. Rename them (for example "
            f"{', '.join(repr('user_' + key) for key in collisions)}). DeepSpeed's keys: {sorted(RESERVED_KEYS)}."
        )
    return converted


def save(strategy: DeepSpeedStrategy, path: str | Path, state: dict[str, Any], filter: dict[str, Any] | None) -> None:
    """Write ``state`` to the directory ``path`` (every rank takes part); a state without models to one file."""
    engines = _engines_in(strategy, state)
    if not engines:
        strategy.ensure_every_rank_saves(path)
        save_file(strategy, path, state, filter)
        return
    refuse_remote(
        path,
        f"fabric.save({str(path)!r}) of a DeepSpeed model",
        "Save to a local or mounted directory and copy it to the store afterwards.",
    )
    if filter is not None:
        raise ValueError(
            f"fabric.save(filter=...) cannot run with strategy={strategy.name!r}: DeepSpeed writes each model and "
            "its optimizer shards whole. Save without filter, and consolidate the weights afterwards with "
            "`fabric consolidate`."
        )
    client = _client_state(strategy, state, engines)
    tags = _tags(engines)
    first = next(iter(tags))

    def write(folder: Path) -> None:
        for key, record in engines:
            record.engine.save_checkpoint(
                str(folder),
                tag=tags[key],
                client_state=client if key == first else {},
                exclude_frozen_parameters=strategy.exclude_frozen_parameters,
            )
        if strategy.is_global_zero:
            metadata = {
                "format": 1,
                "tags": tags,
                "client_state": tags[first],
                "zero_stage": strategy.zero_stage,
                "world_size": strategy.world_size,
            }
            (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")

    # Every rank writes into the staging folder rank 0 names beside rank 0's path.
    save_directory(Path(strategy.broadcast(str(path))), write, strategy, strategy.name)


# -- loading --------------------------------------------------------------------------------------


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


def _model_states_file(path: Path, tag: str) -> Path:
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


def _choose_tags(path: Path, metadata: dict[str, Any], engines: list[tuple[str, EngineRecord]]) -> dict[str, str]:
    saved: dict[str, str] | None = metadata.get("tags")
    if saved is None:
        if len(engines) > 1:
            raise ValueError(
                f"fabric.load({str(path)!r}): the state holds {len(engines)} DeepSpeed models, but this checkpoint "
                "was not written by fabric-deepspeed and holds one."
            )
        return {engines[0][0]: str(metadata["client_state"])}
    if len(saved) == 1 and len(engines) == 1:
        return {engines[0][0]: next(iter(saved.values()))}
    missing = [key for key, _ in engines if key not in saved]
    if missing:
        raise KeyError(
            f"fabric.load({str(path)!r}): the state holds DeepSpeed models under {[key for key, _ in engines]}, but "
            f"the checkpoint holds models saved under {sorted(saved)}. Use the same keys as when saving."
        )
    return {key: saved[key] for key, _ in engines}


def load(
    strategy: DeepSpeedStrategy,
    path: str | Path,
    state: dict[str, Any] | Module | Optimizer | None,
    *,
    strict: bool,
    weights_only: bool,
) -> dict[str, Any]:
    """Restore ``state`` from ``path``; return the client state that ``state`` did not ask for."""
    if not is_remote(path):  # a URL can only be one file (see below); DeepSpeed folders are local
        path = Path(strategy.broadcast(str(path)))
        strategy.recover_checkpoint(path)  # a save that crashed between its two renames left path missing
    if is_remote(path) or not Path(path).is_dir():
        # A single file (consolidated weights, or a state without models): loaded as the DDP strategy does.
        if any(record.owns(state) for record in strategy.records):
            raise NotImplementedError(
                f"fabric.load_raw({str(path)!r}, optimizer): DeepSpeed keeps the optimizer state inside its engine, "
                "partitioned; it cannot be loaded from a plain optimizer state dict."
            )
        return load_file(strategy, path, state, strict, weights_only)
    path = Path(path)
    verify_directory(path, strategy)  # before anything is read into the user's objects
    metadata = read_metadata(path)
    if isinstance(state, Optimizer):
        raise NotImplementedError(
            f"fabric.load_raw({str(path)!r}, optimizer): DeepSpeed restores an optimizer together with its model. "
            "Use fabric.load(path, {'model': model, 'optimizer': optimizer})."
        )
    if isinstance(state, Module):
        state = {"model": state}
        engines = _engines_in(strategy, state)
        if not engines:
            raise ValueError(f"fabric.load_raw({str(path)!r}, model): the model was not set up with DeepSpeed.")
        _load_engines(strategy, path, metadata, state, engines, strict=strict, weights_only=weights_only)
        return {}
    if state is None:
        checkpoint = load_model_states(_model_states_file(path, str(metadata["client_state"])), weights_only)
        return {key: value for key, value in checkpoint.items() if key not in RESERVED_KEYS}

    engines = _engines_in(strategy, state)
    if not engines:
        raise ValueError(
            f"fabric.load({str(path)!r}, state): this is a DeepSpeed checkpoint folder, which restores through the "
            "model's engine, but the state holds no model set up with DeepSpeed. Put the model in the state: "
            "fabric.load(path, {'model': model, ...})."
        )
    client = _load_engines(strategy, path, metadata, state, engines, strict=strict, weights_only=weights_only)
    client = {key: value for key, value in client.items() if key not in RESERVED_KEYS}
    models = {key for key, _ in engines}
    wanted = [
        key for key, obj in state.items() if key not in models and not any(record.owns(obj) for _, record in engines)
    ]
    check_missing(path, wanted, client, strict, besides=" besides the models")

    def load_module(module: Module, value: dict[str, Any]) -> None:
        strategy.load_module_state_dict(module, value, strict=strict)

    return restore_into(state, client, load_module, keys=wanted)


def _load_engines(
    strategy: DeepSpeedStrategy,
    path: Path,
    metadata: dict[str, Any],
    state: dict[str, Any],
    engines: list[tuple[str, EngineRecord]],
    *,
    strict: bool,
    weights_only: bool,
) -> dict[str, Any]:
    tags = _choose_tags(path, metadata, engines)
    if weights_only:
        check_safe(file for tag in tags.values() for file in (path / tag).glob("*.pt"))
    client: dict[str, Any] = {}
    for key, record in engines:
        with_optimizer = any(record.owns(obj) for obj in state.values())
        try:
            loaded, client_state = record.engine.load_checkpoint(
                str(path),
                tag=tags[key],
                load_module_strict=strict,
                load_optimizer_states=with_optimizer,
                load_lr_scheduler_states=False,
                load_module_only=not with_optimizer,
            )
        except Exception as err:
            if "world size" in str(err) and with_optimizer:
                raise RuntimeError(
                    f"fabric.load({str(path)!r}): the checkpoint was written by {metadata.get('world_size', 'another')}"
                    f" processes and this run has {strategy.world_size}. DeepSpeed cannot re-partition ZeRO stage "
                    f"{strategy.zero_stage}'s optimizer state for another world size. Leave the optimizer out of the "
                    "state to restart from the model weights, or run with the world size the checkpoint was saved with."
                ) from err
            raise
        if loaded is None:
            raise FileNotFoundError(f"DeepSpeed found no checkpoint with tag {tags[key]!r} in {str(path)!r}.")
        if tags[key] == metadata.get("client_state"):
            client = dict(client_state or {})
    return client


def load_full_weights(
    strategy: DeepSpeedStrategy, record: EngineRecord, state_dict: dict[str, Any], strict: bool
) -> None:
    """Load a full (consolidated) state dict into a model that DeepSpeed already set up (stages 0 to 2)."""
    if strategy.zero_stage_3:
        raise NotImplementedError(
            f"Loading full weights into a model already set up with strategy={strategy.name!r} (ZeRO stage 3, which "
            "partitions the parameters) is not supported. Load them into the plain model before fabric.setup() "
            "(fabric.load_raw(path, model) or model.load_state_dict(...)), or save and load a DeepSpeed checkpoint "
            "folder with fabric.save/fabric.load."
        )
    record.module.load_state_dict(state_dict, strict=strict)
    refresh = getattr(record.engine.optimizer, "refresh_fp32_params", None)
    if callable(refresh):
        refresh()  # the optimizer's fp32 master weights follow the loaded ones
