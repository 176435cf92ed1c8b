"""``fabric.save`` of a state holding DeepSpeed models: one checkpoint folder, written by every rank.

In the order a save runs: find the state's DeepSpeed models (:func:`~fabric_deepspeed.engines.models_in`);
name a tag folder for each (:func:`tags_for`); gather the rest of the state as DeepSpeed's
client state, refusing keys DeepSpeed keeps itself (:func:`client_state`); then every rank
has each engine write its files into the staging folder of fabric-core's
:func:`~fabric_core.strategies.checkpoint_state.save_directory`, and rank 0 adds
:data:`~fabric_deepspeed.checkpoint_files.METADATA_FILE`. A state without any DeepSpeed model
is one file (:func:`~fabric_core.strategies.checkpoint_state.save_file`), as with DDP.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fabric_core.strategies.checkpoint_state import save_directory, save_file
from fabric_core.utilities.remote_paths import refuse_remote

from fabric_deepspeed.checkpoint_files import METADATA_FILE, RESERVED_KEYS, SINGLE_TAG
from fabric_deepspeed.engines import EngineRecord, models_in

if TYPE_CHECKING:
    from fabric_deepspeed.strategy import DeepSpeedStrategy


class CheckpointKeyError(ValueError):
    """A key of the user's state collides with a key DeepSpeed keeps in its checkpoint."""


def tags_for(engines: list[tuple[str, EngineRecord]]) -> dict[str, str]:
    """The tag folder of each model: ``checkpoint`` for the only one, else ``checkpoint-<key>``."""
    if len(engines) == 1:
        return {engines[0][0]: SINGLE_TAG}
    tags: dict[str, str] = {}
    for key, _ in engines:
        tag = f"{SINGLE_TAG}-{re.sub(r'[^A-Za-z0-9_.-]', '_', key)}"
        if tag in tags.values():
            raise ValueError(f"fabric.save(): the state keys of two models both become the folder name {tag!r}.")
        tags[key] = tag
    return tags


def client_state(
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


def save(
    strategy: DeepSpeedStrategy,
    path: str | Path,
    state: dict[str, Any],
    filter: dict[str, Any] | None,
    storage_options: Any = None,
) -> None:
    """Write ``state`` to the directory ``path`` (every rank takes part); a state without models to one file."""
    if storage_options is not None:
        raise TypeError(
            f"DeepSpeedStrategy.save_checkpoint(storage_options={storage_options!r}): DeepSpeed writes local "
            "files and takes no storage options. Drop the argument."
        )
    engines = models_in(strategy.records, state)
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
    client = client_state(strategy, state, engines)
    tags = tags_for(engines)
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
