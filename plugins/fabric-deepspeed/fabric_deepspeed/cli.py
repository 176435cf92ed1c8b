"""``fabric consolidate DIR -o FILE`` for a DeepSpeed checkpoint folder: one fp32 state dict.

The add-on registers this as a checkpoint format of the core's ``fabric consolidate``
(through ``fabric_register_commands`` in :mod:`fabric_deepspeed`): the core hands it any
folder :func:`is_deepspeed_checkpoint` recognises. ``python -m fabric_deepspeed.cli
consolidate DIR -o FILE`` runs the same code directly.

ZeRO keeps each rank's shard of the fp32 master weights in its own file. This command
merges them with DeepSpeed's ``zero_to_fp32`` utilities (stages 1 to 3; with ZeRO off the
weights are whole already) and writes a plain ``{name: tensor}`` state dict that loads with
``torch.load(FILE, weights_only=True)`` and ``model.load_state_dict(...)``, without DeepSpeed.

DeepSpeed's utilities unpickle everything, so the folder is read as ``fabric.load`` reads it:
every file of the model's tag is scanned first and the model states are read through torch's
restricted unpickler; a file holding code is refused (``UnsafeCheckpointError``) and nothing
in it runs. ``--no-weights-only`` reads a folder you trust without these checks.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from fabric_core.errors import UnsafeCheckpointError

from fabric_deepspeed.checkpoint_files import (
    METADATA_FILE,
    check_safe,
    load_model_states,
    model_states_file,
    read_metadata,
)


class ConsolidateError(ValueError):
    """A problem with the folder or the options: one line on stderr."""


def is_deepspeed_checkpoint(directory: Path) -> bool:
    """Whether ``directory`` is a DeepSpeed checkpoint folder (fabric-deepspeed's metadata, or DeepSpeed's own)."""
    if not directory.is_dir():
        return False
    try:
        read_metadata(directory)
    except (FileNotFoundError, ValueError):
        return False
    return True


def add_consolidate_arguments(group: Any) -> None:
    """The options ``fabric consolidate`` gets for DeepSpeed folders."""
    group.add_argument(
        "--model",
        metavar="NAME",
        help=f"which model, when the folder holds several (their state keys, listed in {METADATA_FILE})",
    )
    group.add_argument(
        "--exclude-frozen-parameters", action="store_true", help="leave out parameters that were not trained"
    )


def consolidate_command(directory: Path, output: Path, args: argparse.Namespace) -> str:
    """``fabric consolidate`` for a DeepSpeed folder: write ``output``, return the line to print."""
    count = consolidate(directory, output, args.model, args.exclude_frozen_parameters, weights_only=args.weights_only)
    return f"wrote {count} tensors (float32) to {output}"


def _choose_tag(directory: Path, metadata: dict[str, Any], wanted: str | None) -> str:
    tags: dict[str, str] | None = metadata.get("tags")
    if tags is None:  # a DeepSpeed folder not written by fabric-deepspeed
        if wanted is not None and not (directory / wanted).is_dir():
            raise ConsolidateError(f"{str(directory)!r} has no tag folder {wanted!r}.")
        return wanted or str(metadata["client_state"])
    if wanted is not None:
        if wanted in tags:
            return tags[wanted]
        if wanted in tags.values():
            return wanted
        raise ConsolidateError(
            f"{str(directory)!r} holds the models {sorted(tags)} (tags {sorted(tags.values())}); --model {wanted!r} "
            "is none of them."
        )
    if len(tags) > 1:
        raise ConsolidateError(
            f"{str(directory)!r} holds {len(tags)} models: {sorted(tags)}. Choose one with --model NAME."
        )
    return next(iter(tags.values()))


def consolidate(
    directory: Path, output: Path, model: str | None = None, exclude_frozen: bool = False, *, weights_only: bool = True
) -> int:
    """Write the fp32 weights of one model of the checkpoint folder ``directory`` to ``output``; return the count.

    :param weights_only: refuse files holding pickled code (:class:`~fabric_core.errors.UnsafeCheckpointError`)
        before DeepSpeed's utilities unpickle them; ``False`` for a folder you trust.
    """
    if not directory.is_dir():
        raise ConsolidateError(f"{str(directory)!r} is not a folder; pass the folder that fabric.save() wrote.")
    try:
        metadata = read_metadata(directory)
    except FileNotFoundError as err:
        raise ConsolidateError(str(err)) from err
    tag = _choose_tag(directory, metadata, model)
    model_file = model_states_file(directory, tag)
    os.environ.setdefault("DS_ACCELERATOR", "cpu")  # before deepspeed is imported (its classes, or the merge)
    if weights_only:  # DeepSpeed's zero_to_fp32 unpickles every file of the tag: none may hold code
        check_safe(sorted((directory / tag).glob("*.pt")))
    model_states = load_model_states(model_file, weights_only)
    stage = metadata.get("zero_stage")
    if stage is None:
        stage = int(model_states["ds_config"].get("zero_optimization", {}).get("stage", 0))
    if stage == 0:
        module = model_states["module"]
        state_dict = {name: _fp32(tensor) for name, tensor in module.items()}
    else:
        from fabric_deepspeed._imports import import_deepspeed

        import_deepspeed("fabric consolidate")
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        state_dict = get_fp32_state_dict_from_zero_checkpoint(
            str(directory), tag=tag, exclude_frozen_parameters=exclude_frozen
        )
        state_dict = {name: _fp32(tensor) for name, tensor in state_dict.items()}
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    torch.save(state_dict, partial)
    os.replace(partial, output)
    return len(state_dict)


def _fp32(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.detach().to("cpu").contiguous().clone()
    return tensor.float() if tensor.is_floating_point() else tensor


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fabric-deepspeed", description="fabric-deepspeed command line.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    command = commands.add_parser(
        "consolidate",
        help="merge a DeepSpeed checkpoint folder into one fp32 state dict file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument("directory", metavar="DIR", type=Path, help="the folder that fabric.save() wrote")
    command.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="the file to write")
    command.add_argument(
        "--no-weights-only",
        dest="weights_only",
        action="store_false",
        help="unpickle any Python object in the checkpoint (runs its code: only for a folder you trust)",
    )
    add_consolidate_arguments(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "consolidate":
        parser.print_help()
        return 2
    try:
        count = consolidate(
            args.directory, args.output, args.model, args.exclude_frozen_parameters, weights_only=args.weights_only
        )
    except UnsafeCheckpointError as err:
        print(f"fabric-deepspeed consolidate: {err} Here: --no-weights-only.", file=sys.stderr)
        return 1
    except (ConsolidateError, RuntimeError, FileNotFoundError) as err:
        print(f"fabric-deepspeed consolidate: {err}", file=sys.stderr)
        return 1
    print(f"wrote {count} tensors (float32) to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
