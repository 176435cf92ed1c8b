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
state. Saving is atomic: the ranks write a hidden staging folder beside ``path``; once all of
them are done, rank 0 writes ``fabric_manifest.json`` (sizes and checksums of every file, see
:mod:`fabric_core.strategies.manifest`) and swaps the folder into place with
:mod:`fabric_core.strategies.staging`, which also recovers a path left missing by a crash
mid-swap and removes the leftovers of crashed saves. A load checks the manifest before it
restores anything. A state without any DeepSpeed model is saved as one file,
as the DDP strategy does.

A user key that DeepSpeed uses itself (``module``, ``optimizer``, ``global_steps``, ...) is
refused: DeepSpeed would overwrite it, or drop it on load. Loading reads with DeepSpeed's
loader, so with ``weights_only=True`` (the default) the files are first scanned for pickled
objects that ``torch.load(weights_only=True)`` would refuse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from fabric_core.checkpoint_io import CheckpointError
from fabric_core.strategies import manifest, staging
from fabric_core.strategies.strategy import is_stateful
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
            for record in strategy._records:
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
        if any(record.owns(obj) for record in strategy._records):
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


def save(strategy: DeepSpeedStrategy, path: Path, state: dict[str, Any], filter: dict[str, Any] | None) -> None:
    """Write ``state`` to the directory ``path`` (every rank takes part)."""
    engines = _engines_in(strategy, state)
    if not engines:
        strategy._base_save_checkpoint(path, state, filter)
        return
    if filter is not None:
        raise ValueError(
            f"fabric.save(filter=...) cannot run with strategy={strategy.name!r}: DeepSpeed writes each model and "
            "its optimizer shards whole. Save without filter, and consolidate the weights afterwards with "
            "`fabric-deepspeed consolidate`."
        )
    client = _client_state(strategy, state, engines)
    tags = _tags(engines)

    # Rank 0 locks the save as alive and names the staging folder every rank writes into.
    own = staging.begin(Path(path), directory=True) if strategy.is_global_zero else None
    path, token = strategy.broadcast((str(path), own.token if own is not None else ""))
    target = Path(path)
    partial = staging.sibling(target, "staging", token)
    try:
        strategy.barrier("fabric_deepspeed.save.start")
        first = next(iter(tags))
        for key, record in engines:
            record.engine.save_checkpoint(
                str(partial),
                tag=tags[key],
                client_state=client if key == first else {},
                exclude_frozen_parameters=strategy.exclude_frozen_parameters,
            )
        if own is not None:
            metadata = {
                "format": 1,
                "tags": tags,
                "client_state": tags[first],
                "zero_stage": strategy.zero_stage,
                "world_size": strategy.world_size,
            }
            (partial / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        strategy.barrier("fabric_deepspeed.save.written")
        if own is not None:
            manifest.write_manifest(partial, strategy.name, strategy.world_size)  # last: the save is complete
            own.commit()
    except BaseException:
        if own is not None:
            own.abort()
        raise


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
    are allowed.
    """
    from torch.serialization import get_unsafe_globals_in_checkpoint

    for file in files:
        unsafe = set(get_unsafe_globals_in_checkpoint(file)) - DEEPSPEED_CHECKPOINT_GLOBALS
        if unsafe:
            raise RuntimeError(
                f"fabric.load(): {str(file)!r} holds pickled objects that weights_only=True refuses to load "
                f"({', '.join(sorted(unsafe))}). If you trust this checkpoint, pass fabric.load(..., "
                "weights_only=False)."
            )


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
    path: Path,
    state: dict[str, Any] | Module | Optimizer | None,
    *,
    strict: bool,
    weights_only: bool,
) -> dict[str, Any]:
    """Restore ``state`` from ``path``; return the client state that ``state`` did not ask for."""
    path = Path(strategy.broadcast(str(path)))
    strategy.recover_checkpoint(path)  # a save that crashed between its two renames left path missing
    if not path.is_dir():
        return _load_file(strategy, path, state, strict, weights_only)
    _verify_on_rank_zero(strategy, path)  # before anything is read into the user's objects
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
        file = _model_states_file(path, str(metadata["client_state"]))
        if weights_only:
            check_safe([file])
        # Checked above: only tensors, plain values and DeepSpeed's own data classes.
        checkpoint = torch.load(file, map_location="cpu", weights_only=False)
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
    missing = [key for key in wanted if key not in client]
    if strict and missing:
        raise KeyError(
            f"The requested state contains keys {missing} that the checkpoint {str(path)!r} does not have (it has "
            f"{sorted(client)} besides the models). Pass strict=False to load the keys that exist."
        )
    for key in wanted:
        if key not in client:
            continue
        value = client.pop(key)
        obj = state[key]
        if isinstance(obj, Module):
            strategy.load_module_state_dict(obj, value, strict=strict)
        elif is_stateful(obj):
            obj.load_state_dict(value)
        else:
            state[key] = value
    return client


def _verify_on_rank_zero(strategy: DeepSpeedStrategy, path: Path) -> None:
    """Check ``path`` against its manifest once (rank 0 reads every file); raise the same error on every rank."""
    problem = None
    if strategy.is_global_zero:
        try:
            manifest.verify(path)
        except CheckpointError as err:
            problem = str(err)
    problem = strategy.broadcast(problem)
    if problem is not None:
        raise CheckpointError(problem)


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


def _load_file(
    strategy: DeepSpeedStrategy,
    path: Path,
    state: dict[str, Any] | Module | Optimizer | None,
    strict: bool,
    weights_only: bool,
) -> dict[str, Any]:
    """A single file (consolidated weights, or a state without models): load it as the DDP strategy does."""
    if any(record.owns(state) for record in strategy._records):
        raise NotImplementedError(
            f"fabric.load_raw({str(path)!r}, optimizer): DeepSpeed keeps the optimizer state inside its engine, "
            "partitioned; it cannot be loaded from a plain optimizer state dict."
        )
    return strategy._base_load_checkpoint(path, state, strict, weights_only)


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
