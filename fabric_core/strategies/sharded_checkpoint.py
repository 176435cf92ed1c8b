"""Checkpoints of sharded models with ``torch.distributed.checkpoint`` (DCP).

A sharded checkpoint is a directory: DCP's files hold the tensors (every rank writes its
own shards, and any world size can read them back), and ``fabric_meta.pt`` (written by
rank 0) holds the plain Python values of the state, so they load under
``weights_only=True``. A full checkpoint is one ``torch.save`` file that rank 0 writes.

Directories are written next to their final path, get a manifest (sizes and checksums of
every file, :mod:`~fabric_core.strategies.manifest`) once every rank has finished, and are
renamed into place (:mod:`~fabric_core.strategies.staging`), so a crash mid-save never leaves
half a checkpoint at ``path``, and a load verifies the files before it restores anything. What was at
``path`` before (an older checkpoint directory or file) is replaced; a directory that is not
a checkpoint and not empty is never replaced: the save refuses, so no user data is deleted.
``filter`` applies to the state dicts of models and stateful objects and to plain dict
values, as in :meth:`Strategy.convert_state <fabric_core.strategies.strategy.Strategy.convert_state>`.

At an fsspec URL (``s3://``, ``gs://``, ``memory://``, ...) the same directory is written
through DCP's fsspec storage, staged, manifested and then copied into place, which is not
atomic: see :mod:`~fabric_core.strategies.remote_directory` for what a crash can leave.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.checkpoint.state_dict_loader import _load_state_dict
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save
from torch.nn import Module
from torch.optim import Optimizer

from fabric_core.checkpoint_io import CheckpointIO
from fabric_core.strategies import dcp_reading, manifest, staging
from fabric_core.strategies.checkpoint_state import (
    apply_filter,
    check_missing,
    is_stateful,
    restore_into,
    save_directory,
    verify_directory,
    warn_if_no_entry_matched,
)
from fabric_core.utilities.remote_paths import as_checkpoint_path, is_remote, shown_url


def _remote() -> ModuleType:
    """:mod:`~fabric_core.strategies.remote_directory`, imported for URLs only: it imports fsspec
    (about 30 ms) that local folders never need."""
    from fabric_core.strategies import remote_directory

    return remote_directory


META_FILE = "fabric_meta.pt"
# DCP's planner: "Size mismatch between saved torch.Size([8, 4]) and current: torch.Size([4, 4]) for model.0.weight"
_SIZE_MISMATCH = re.compile(
    r"Size mismatch between saved torch\.Size\((?P<saved>\[[\d, ]*\])\) and current: "
    r"torch\.Size\((?P<current>\[[\d, ]*\])\) for (?P<key>\S+)"
)


def owner_of(optimizer: Optimizer, modules: Iterable[Module]) -> Module:
    """The module whose parameters ``optimizer`` steps (DCP needs the pair)."""
    wanted = {id(p) for group in optimizer.param_groups for p in group["params"]}
    for module in modules:
        if wanted & {id(p) for p in module.parameters()}:
            return module
    raise ValueError(
        f"Saving or loading a sharded {type(optimizer).__name__} needs its model in the same state dict (DCP "
        "stores optimizer state by parameter name). Add the model to the state you pass to fabric.save/load."
    )


def target_path(path: str | Path, what: str) -> str | Path:
    """``path`` as the sharded save and load take it: a :class:`~pathlib.Path`, or a URL string.

    A URL that went through ``Path()`` (``s3:/bucket/ckpt``) lost its ``//`` and is refused.
    """
    if isinstance(path, Path) and is_remote(path):
        raise ValueError(
            f"{what}: {str(path)!r} looks like the URL {shown_url(path)!r} passed through pathlib.Path, which "
            "folded its '//'. Pass the URL as a string."
        )
    return as_checkpoint_path(path)


def check_target(path: str | Path) -> None:
    """Refuse a directory (or a URL's folder) that holds something other than a checkpoint (saving would replace it)."""
    if isinstance(path, str):
        _remote().check_target(path)
        return
    if path.is_dir() and not is_sharded_checkpoint(path) and any(path.iterdir()):
        raise IsADirectoryError(
            f"fabric.save({str(path)!r}): this path is a directory that is not a checkpoint and not empty; saving "
            "would replace it and delete what it holds. Choose another path, or remove the directory first."
        )


def _split(state: dict[str, Any]) -> tuple[dict[str, Module], dict[str, Optimizer], dict[str, Any], dict[str, Any]]:
    modules = {k: v for k, v in state.items() if isinstance(v, Module)}
    optimizers = {k: v for k, v in state.items() if isinstance(v, Optimizer)}
    stateful = {k: v for k, v in state.items() if k not in modules and k not in optimizers and is_stateful(v)}
    plain = {k: v for k, v in state.items() if k not in modules and k not in optimizers and k not in stateful}
    return modules, optimizers, stateful, plain


def save_sharded(
    path: str | Path,
    state: dict[str, Any],
    filter: dict[str, Any] | None,
    barrier: Callable[[], None],
    strategy: str = "FSDPStrategy",
) -> None:
    """Write a DCP directory at ``path`` from every rank; rank 0 writes the manifest and swaps it into place."""
    modules, optimizers, stateful, plain = _split(state)
    for key in optimizers:
        if filter is not None and key in filter:
            raise ValueError(
                f"fabric.save(filter={{{key!r}: ...}}) cannot apply to a sharded optimizer: its state is split by "
                "parameter across ranks. Filter the model's entries instead, or use state_dict_type='full'."
            )
    tensors: dict[str, Any] = {}
    for key, module in modules.items():
        tensors[key] = apply_filter(key, get_model_state_dict(module), filter)
    for key, optimizer in optimizers.items():
        tensors[key] = get_optimizer_state_dict(owner_of(optimizer, modules.values()), optimizer)
    meta = {key: apply_filter(key, obj.state_dict(), filter) for key, obj in stateful.items()}
    meta.update({key: apply_filter(key, value, filter) for key, value in plain.items()})

    def write(folder: Path) -> None:
        dcp_save(tensors, checkpoint_id=folder)
        if dist.get_rank() == 0:
            CheckpointIO().save_checkpoint(meta, folder / META_FILE)

    def write_remote(folder: str) -> None:
        dcp_save(tensors, storage_writer=_remote().writer(folder))
        if dist.get_rank() == 0:
            CheckpointIO().save_checkpoint(meta, f"{folder}/{META_FILE}")

    if isinstance(path, str):
        _remote().save_directory(path, write_remote, _ProcessGroup(barrier), strategy)
    else:
        save_directory(path, write, _ProcessGroup(barrier), strategy)


def prepare_load(path: str | Path, collectives: Any) -> str | Path:
    """Before a load (every rank): ``path`` as :func:`target_path` gives it, a crashed save dealt with.

    Local: put back the newest complete copy of a path a save left missing
    (``Strategy.recover_checkpoint``). URL: refuse one a save left missing or partial,
    naming the complete staged copy (:func:`remote_directory.refuse_if_incomplete`).
    """
    path = target_path(path, f"fabric.load({str(path)!r})")
    if isinstance(path, str):
        _remote().refuse_if_incomplete(path, collectives)
    else:
        collectives.recover_checkpoint(path)
    return path


@dataclass
class _ProcessGroup:
    """The default process group, as :func:`save_directory` and :func:`verify_directory` use a strategy."""

    _barrier: Callable[[], None] | None = None

    @property
    def is_global_zero(self) -> bool:
        return dist.get_rank() == 0

    @property
    def world_size(self) -> int:
        return dist.get_world_size()

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def barrier(self, name: str | None = None) -> None:
        if self._barrier is not None:
            self._barrier()
        else:
            dist.barrier()


def write_full(io: CheckpointIO, checkpoint: dict[str, Any], path: str | Path) -> None:
    """Write one checkpoint file at ``path`` (rank 0 only), replacing a local sharded checkpoint directory there."""
    if isinstance(path, str) or not path.is_dir():
        io.save_checkpoint(checkpoint, path)
        return
    own = staging.begin(path, directory=False)
    try:
        io.save_checkpoint(checkpoint, own.location)
    except BaseException:
        own.abort()
        raise
    own.commit()


def is_sharded_checkpoint(path: str | Path) -> bool:
    if isinstance(path, str):
        return bool(_remote().is_sharded_checkpoint(path))
    return path.is_dir() and (path / ".metadata").is_file()


def load_sharded(path: str | Path, state: dict[str, Any] | None, strict: bool, weights_only: bool) -> dict[str, Any]:
    """Restore ``state`` from a DCP directory (or a URL's folder) written at any world size; return the rest."""
    if not is_sharded_checkpoint(path):
        raise FileNotFoundError(
            f"{str(path)!r} is not a sharded checkpoint directory (no DCP .metadata file in it). Check the path; "
            "a single-file checkpoint loads the same way, by passing the file."
        )
    # Before anything is read into the user's objects.
    if isinstance(path, str):
        _remote().verify_directory(path, _ProcessGroup())
        meta_path: str | Path = f"{path}/{META_FILE}"
        has_meta = _remote().Location.of(path, f"fabric.load({path!r})").child(META_FILE).exists()
    else:
        verify_directory(path, _ProcessGroup())
        meta_path = path / META_FILE
        has_meta = meta_path.exists()
    # A DCP directory written by plain torch.distributed.checkpoint has no meta file.
    meta = CheckpointIO().load_checkpoint(meta_path, weights_only=weights_only) if has_meta else {}
    if state is None:
        raise ValueError(
            f"fabric.load({str(path)!r}) without a state cannot rebuild a sharded checkpoint: the tensors are "
            "split across files. Pass the objects to restore (fabric.load(path, {'model': model, ...})), or "
            "turn it into one file first with `fabric consolidate`."
        )
    modules, optimizers, stateful, plain = _split(state)
    if isinstance(path, str):
        metadata = _remote().read_metadata(path, weights_only)
        reader: Any = _remote().MetadataReader(path, metadata)
    else:
        metadata = dcp_reading.read_metadata(path, weights_only)
        reader = dcp_reading.MetadataReader(path, metadata)
    saved_keys = {key.split(".", 1)[0] for key in metadata.state_dict_metadata}
    available = saved_keys | set(meta)
    check_missing(path, state, available, strict)
    tensors: dict[str, Any] = {}
    for key, module in modules.items():
        if key in saved_keys:
            tensors[key] = get_model_state_dict(module)
    for key, optimizer in optimizers.items():
        if key in saved_keys:
            tensors[key] = get_optimizer_state_dict(owner_of(optimizer, modules.values()), optimizer)
    planner = dcp_reading.SafeLoadPlanner(path, weights_only, allow_partial_load=not strict)
    try:
        dcp_load(tensors, storage_reader=reader, planner=planner)
    except CheckpointException as err:
        ours = dcp_reading.checkpoint_error_in(err)
        if ours is not None:
            raise ours from err
        # DCP's own error is a BaseException listing every rank's failure; give the one-line cause.
        mismatch = _SIZE_MISMATCH.search(str(err))
        if mismatch is not None:
            raise ValueError(
                f"The checkpoint {str(path)!r} holds {mismatch['key']!r} with shape {mismatch['saved']} but the "
                f"model's {mismatch['key']!r} has shape {mismatch['current']}. Nothing was loaded into that "
                "model. Build the model with the configuration it was saved with, or leave the key out of the load."
            ) from err
        if strict and "missing key" in str(err).lower():
            raise KeyError(
                f"The checkpoint {str(path)!r} lacks entries the requested objects have (saved with a filter, or "
                "from a different model). Pass strict=False to load the entries that exist."
            ) from err
        raise RuntimeError(f"Loading the sharded checkpoint {str(path)!r} failed: {str(err).splitlines()[0]}") from err

    def load_module(module: Module, values: dict[str, Any]) -> None:
        if not strict:
            key = next(key for key, obj in modules.items() if obj is module)
            saved = [name[len(key) + 1 :] for name in metadata.state_dict_metadata if name.startswith(f"{key}.")]
            warn_if_no_entry_matched(module, values, saved)
        set_model_state_dict(module, values, options=StateDictOptions(strict=strict))

    def load_optimizer(optimizer: Optimizer, values: dict[str, Any]) -> None:
        set_optimizer_state_dict(owner_of(optimizer, modules.values()), optimizer, values)

    restore_into(state, tensors, load_module, load_optimizer)
    restore_into(state, meta, load_module, keys=stateful.keys() | plain.keys())
    for key in list(meta):
        if key in state:
            meta.pop(key)
    return meta


def full_state(state: dict[str, Any], filter: dict[str, Any] | None) -> dict[str, Any]:
    """One full (unsharded) state dict on rank 0, gathered from every rank (a collective)."""
    modules, optimizers, stateful, plain = _split(state)
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    converted: dict[str, Any] = {}
    for key, value in state.items():
        if key in modules:
            converted[key] = apply_filter(key, get_model_state_dict(value, options=options), filter)
        elif key in optimizers:
            owner = owner_of(value, modules.values())
            converted[key] = apply_filter(key, get_optimizer_state_dict(owner, value, options=options), filter)
        elif key in stateful:
            converted[key] = apply_filter(key, value.state_dict(), filter)
        else:
            converted[key] = apply_filter(key, plain[key], filter)
    return converted


def load_full_into(checkpoint: dict[str, Any], state: dict[str, Any], strict: bool, path: str | Path) -> dict[str, Any]:
    """Restore sharded live objects from a full checkpoint held on every rank; return the rest."""
    modules, _, _, _ = _split(state)
    check_missing(path, state, checkpoint, strict)
    options = StateDictOptions(full_state_dict=True, strict=strict)

    def load_module(module: Module, value: dict[str, Any]) -> None:
        if not strict:
            warn_if_no_entry_matched(module, get_model_state_dict(module), value)
        set_model_state_dict(module, value, options=options)

    def load_optimizer(optimizer: Optimizer, value: dict[str, Any]) -> None:
        _load_full_optimizer(owner_of(optimizer, modules.values()), optimizer, value, options)

    return restore_into(state, checkpoint, load_module, load_optimizer)


def _load_full_optimizer(
    module: Module, optimizer: Optimizer, value: dict[str, Any], options: StateDictOptions
) -> None:
    has_tensor_state = any(
        isinstance(tensor, torch.Tensor) and tensor.dim() > 0
        for per_parameter in value.get("state", {}).values()
        for tensor in per_parameter.values()
    )
    if has_tensor_state:
        set_optimizer_state_dict(module, optimizer, value, options=options)
        return
    # No per-parameter tensors (plain SGD): torch's loader cannot place such a state, and
    # there is nothing to place; restore the hyperparameters of each group.
    for group, saved in zip(optimizer.param_groups, value["param_groups"], strict=True):
        group.update({name: setting for name, setting in saved.items() if name != "params"})


def consolidate(directory: str | Path, output: str | Path, weights_only: bool = True) -> None:
    """Turn a sharded checkpoint directory into one file for ``torch.load(weights_only=True)`` (no processes needed).

    :param weights_only: ``True`` refuses a directory whose metadata or values would run code when
        unpickled; ``False`` trusts it.
    """
    if is_remote(directory):  # ValueError: the CLI reports it without a traceback
        raise ValueError(
            f"fabric consolidate {shown_url(directory)!r}: this reads local folders only. Copy the folder to a local "
            "path first (fsspec: fs.get(url, local_dir, recursive=True)) and consolidate that."
        )
    directory, output = Path(directory), Path(output)
    if not is_sharded_checkpoint(directory):
        raise FileNotFoundError(
            f"{str(directory)!r} is not a sharded checkpoint directory (no DCP .metadata file in it). Point "
            "`fabric consolidate` to the directory fabric.save wrote."
        )
    manifest.verify(directory)
    metadata = dcp_reading.read_metadata(directory, weights_only)
    meta_path = directory / META_FILE
    meta = CheckpointIO().load_checkpoint(meta_path, weights_only=weights_only) if meta_path.exists() else {}
    tensors: dict[str, Any] = {}
    planner = dcp_reading.SafeConsolidatePlanner(directory, weights_only)
    try:
        # Private, as in dcp_to_torch_save: the public load copies the dict that this planner fills in.
        _load_state_dict(
            tensors, storage_reader=dcp_reading.MetadataReader(directory, metadata), planner=planner, no_dist=True
        )
    except CheckpointException as err:
        ours = dcp_reading.checkpoint_error_in(err)
        if ours is not None:
            raise ours from err
        raise RuntimeError(
            f"Reading the sharded checkpoint {str(directory)!r} failed: {str(err).splitlines()[0]}"
        ) from err
    CheckpointIO().save_checkpoint({**meta, **tensors}, output)
