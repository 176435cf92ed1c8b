"""``fabric.load`` of a DeepSpeed checkpoint folder, and of full weights into a set-up model.

In the order a load runs: recover a folder a crashed save left missing, and check its
manifest (fabric-core's :func:`~fabric_core.strategies.checkpoint_state.verify_directory`)
before anything is read; find which tag folder holds each model of the state
(:func:`choose_tags`); with ``weights_only`` scan every file DeepSpeed will unpickle
(:func:`~fabric_deepspeed.checkpoint_files.check_safe`); let each engine load its tag
(:func:`load_engines`); then restore the client state into the user's objects with
fabric-core's ``check_missing`` and ``restore_into``. A single file (consolidated weights, or
a state saved without models) loads as with DDP (:func:`~fabric_core.strategies.checkpoint_state.load_file`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fabric_core.strategies.checkpoint_state import check_missing, load_file, restore_into, verify_directory
from fabric_core.utilities.remote_paths import is_remote
from torch.nn import Module
from torch.optim import Optimizer

from fabric_deepspeed.checkpoint_files import (
    RESERVED_KEYS,
    check_safe,
    load_model_states,
    model_states_file,
    read_metadata,
)
from fabric_deepspeed.engines import EngineRecord, models_in

if TYPE_CHECKING:
    from fabric_deepspeed.strategy import DeepSpeedStrategy


def choose_tags(path: Path, metadata: dict[str, Any], engines: list[tuple[str, EngineRecord]]) -> dict[str, str]:
    """The tag folder each model of the state loads from: by its key, or the only one to the only one."""
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
        engines = models_in(strategy.records, state)
        if not engines:
            raise ValueError(f"fabric.load_raw({str(path)!r}, model): the model was not set up with DeepSpeed.")
        load_engines(strategy, path, metadata, state, engines, strict=strict, weights_only=weights_only)
        return {}
    if state is None:
        checkpoint = load_model_states(model_states_file(path, str(metadata["client_state"])), weights_only)
        return {key: value for key, value in checkpoint.items() if key not in RESERVED_KEYS}

    engines = models_in(strategy.records, state)
    if not engines:
        raise ValueError(
            f"fabric.load({str(path)!r}, state): this is a DeepSpeed checkpoint folder, which restores through the "
            "model's engine, but the state holds no model set up with DeepSpeed. Put the model in the state: "
            "fabric.load(path, {'model': model, ...})."
        )
    client = load_engines(strategy, path, metadata, state, engines, strict=strict, weights_only=weights_only)
    client = {key: value for key, value in client.items() if key not in RESERVED_KEYS}
    models = {key for key, _ in engines}
    wanted = [
        key for key, obj in state.items() if key not in models and not any(record.owns(obj) for _, record in engines)
    ]
    check_missing(path, wanted, client, strict, besides=" besides the models")

    def load_module(module: Module, value: dict[str, Any]) -> None:
        strategy.load_module_state_dict(module, value, strict=strict)

    return restore_into(state, client, load_module, keys=wanted)


def load_engines(
    strategy: DeepSpeedStrategy,
    path: Path,
    metadata: dict[str, Any],
    state: dict[str, Any],
    engines: list[tuple[str, EngineRecord]],
    *,
    strict: bool,
    weights_only: bool,
) -> dict[str, Any]:
    """Let each engine load its tag (with its optimizer when the state holds it); return the client state."""
    tags = choose_tags(path, metadata, engines)
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
