"""``fabric consolidate DIR -o FILE`` for a DeepSpeed checkpoint folder: one fp32 state dict.

The add-on registers this as a checkpoint format of the core's ``fabric consolidate``
(through ``fabric_register_commands`` in :mod:`fabric_deepspeed`): the core hands it any
folder :func:`is_deepspeed_checkpoint` recognises. ``python -m fabric_deepspeed.cli
consolidate DIR -o FILE`` runs the same code directly.

ZeRO keeps each rank's shard of the fp32 master weights in its own file. This command
merges them with DeepSpeed's ``zero_to_fp32`` utilities (stages 1 to 3; with ZeRO off the
weights are whole already) and writes a plain ``{name: tensor}`` state dict that loads with
``torch.load(FILE, weights_only=True)`` and ``model.load_state_dict(...)``, without DeepSpeed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fabric_deepspeed.checkpoint import METADATA_FILE, _model_states_file, check_safe, read_metadata


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
    count = consolidate(directory, output, args.model, args.exclude_frozen_parameters)
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


def consolidate(directory: Path, output: Path, model: str | None = None, exclude_frozen: bool = False) -> int:
    """Write the fp32 weights of one model of the checkpoint folder ``directory`` to ``output``; return the count."""
    if not directory.is_dir():
        raise ConsolidateError(f"{str(directory)!r} is not a folder; pass the folder that fabric.save() wrote.")
    try:
        metadata = read_metadata(directory)
    except FileNotFoundError as err:
        raise ConsolidateError(str(err)) from err
    tag = _choose_tag(directory, metadata, model)
    model_file = _model_states_file(directory, tag)
    check_safe(sorted((directory / tag).glob("*.pt")))
    # Checked above: only tensors, plain values and DeepSpeed's own data classes.
    model_states = torch.load(model_file, map_location="cpu", weights_only=False)
    stage = metadata.get("zero_stage")
    if stage is None:
        stage = int(model_states["ds_config"].get("zero_optimization", {}).get("stage", 0))
    if stage == 0:
        module = model_states["module"]
        state_dict = {name: _fp32(tensor) for name, tensor in module.items()}
    else:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
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
    add_consolidate_arguments(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "consolidate":
        parser.print_help()
        return 2
    try:
        count = consolidate(args.directory, args.output, args.model, args.exclude_frozen_parameters)
    except (ConsolidateError, RuntimeError, FileNotFoundError) as err:
        print(f"fabric-deepspeed consolidate: {err}", file=sys.stderr)
        return 1
    print(f"wrote {count} tensors (float32) to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
