"""The ``fabric`` command: ``fabric plugins`` lists what is installed; ``fabric run`` launches a script;
``fabric consolidate`` turns a checkpoint directory into one file; ``fabric doctor`` prints what a bug
report needs. Plugins add subcommands, and checkpoint layouts for ``fabric consolidate``, through the
``fabric_register_commands`` hook (:mod:`fabric_core.commands`).

``fabric run``'s checks and launching live in :mod:`fabric_core._run`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _plugins(args: argparse.Namespace) -> int:
    from fabric_core.discovery import discover

    if args.requirements:
        from fabric_core._doctor import requirements

        print("\n".join(requirements()))
        return 0
    found = discover()
    records = [record.as_dict() for record in found.records]
    conflicts = {
        registry.kind: {name: [entry.distribution for entry in entries] for name, entries in registry.conflicts.items()}
        for registry in found.registries.values()
        if registry.conflicts
    }
    if args.json:
        json.dump({"plugins": records, "conflicts": conflicts}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for record in records:
        print(f"{record['distribution']} {record['version']}  [{record['status']}]  ({record['entry_point']})")
        if record["reason"]:
            print(f"    reason: {record['reason']}")
        for kind, names in record["provides"].items():
            print(f"    {kind}: {', '.join(names)}")
            if args.verbose:
                for name, description in _descriptions(found, kind, names, record["distribution"]):
                    print(f"        {name}: {description}")
            _print_aliases(kind, record["aliases"].get(kind, {}))
        for kind, aliases in record["aliases"].items():
            if kind not in record["provides"]:  # an add-on that only adds aliases
                _print_aliases(kind, aliases)
        other_hooks = [hook for hook in record["hooks"] if not hook.startswith("fabric_register_")]
        if other_hooks:
            print(f"    hooks: {', '.join(other_hooks)}")
    for kind, names in conflicts.items():
        for name, distributions in names.items():
            print(f"conflict: {kind} {name!r} is registered by {' and '.join(distributions)}")
    return 0


def _kind_of(kinds: str) -> str | None:
    """The registry kind of a plural that `fabric plugins` shows (``"strategies"`` -> ``"strategy"``), or ``None``."""
    from fabric_core.registry import KINDS

    return next((kind for kind, plural in KINDS.items() if plural == kinds), None)


def _print_aliases(kinds: str, aliases: dict[str, list[str]]) -> None:
    """One line for the aliases of ``kinds`` (``accelerator aliases: gpu = cuda | mps``: the first available)."""
    if aliases:
        kind = _kind_of(kinds) or kinds
        shown = ", ".join(f"{name} = {' | '.join(targets)}" for name, targets in aliases.items())
        print(f"    {kind} aliases: {shown}")


def _descriptions(found: Any, kinds: str, names: list[str], distribution: str) -> list[tuple[str, str]]:
    """``(name, description)`` of the entries ``distribution`` registered under ``kinds`` ("strategies", ...)."""
    kind = _kind_of(kinds)
    if kind is None:  # not a registry (the commands line)
        return []
    registry = found.registry(kind)
    rows = []
    for name in names:
        if name in registry and name not in registry.conflicts:  # a conflict has its own line
            entry = registry.get(name)
            if entry.distribution == distribution and entry.description:
                rows.append((name, entry.description))
    return rows


def build_parser() -> argparse.ArgumentParser:
    """The ``fabric`` parser: the core's subcommands, then those plugins added (running discovery)."""
    from fabric_core import __version__
    from fabric_core.discovery import discover

    plugin_commands = discover().commands

    parser = argparse.ArgumentParser(prog="fabric", description="fabric-core command line.")
    parser.add_argument("--version", action="version", version=f"fabric-core {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    plugins = commands.add_parser("plugins", help="list installed plugins, what they provide and their status")
    plugins.add_argument("--json", action="store_true", help="print JSON for machines")
    plugins.add_argument("-v", "--verbose", action="store_true", help="also print what each name is (its description)")
    plugins.add_argument(
        "--requirements",
        action="store_true",
        help="print name==version pins of fabric-core, its add-ons and what they require (for a requirements file)",
    )
    plugins.set_defaults(handler=_plugins)
    doctor = commands.add_parser(
        "doctor",
        help="print what a bug report needs: versions, devices, backends, environment, plugins, problems",
        description="Print versions, devices, distributed backends, the detected cluster environment and its "
        "variables, installed plugins with their status, and the problems found. Paste it into bug reports.",
    )
    doctor.add_argument("--json", action="store_true", help="print JSON for machines")
    doctor.set_defaults(handler=_doctor)
    _add_run_parser(commands)
    formats = "; ".join(f"{f.name} ({f.distribution}): {f.description}" for f in plugin_commands.formats.values())
    consolidate = commands.add_parser(
        "consolidate",
        help="turn a checkpoint directory into one file",
        description="Turn a checkpoint directory that fabric.save wrote into one file that plain "
        f"torch.load(path, weights_only=True) reads. Needs no processes or GPUs. Layouts known: {formats or 'none'}.",
    )
    consolidate.add_argument("directory", help="the checkpoint directory fabric.save wrote")
    consolidate.add_argument("-o", "--output", help="the file to write (default: DIRECTORY.consolidated.pt)")
    consolidate.add_argument(
        "--no-weights-only",
        dest="weights_only",
        action="store_false",
        help="unpickle any Python object in the checkpoint (runs its code: only for a directory you trust)",
    )
    consolidate.set_defaults(handler=_consolidate)
    problems = plugin_commands.add_format_arguments(consolidate) + plugin_commands.add_to(commands)
    for problem in problems:
        print(f"fabric: warning: {problem}", file=sys.stderr)
    return parser


def _doctor(args: argparse.Namespace) -> int:
    from fabric_core._doctor import render, report

    data = report()
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render(data))
    return 0


def _consolidate(args: argparse.Namespace) -> int:
    """Hand the directory to the first checkpoint format that recognises it."""
    from fabric_core.commands import resolve
    from fabric_core.discovery import discover
    from fabric_core.errors import CheckpointError, UnsafeCheckpointError

    directory = Path(args.directory)
    output = Path(args.output) if args.output else directory.with_name(directory.name + ".consolidated.pt")
    formats = discover().commands
    checkpoint_format = formats.detect(directory)
    if checkpoint_format is None:
        kinds = " nor a ".join(f"{name} checkpoint directory" for name in formats.formats) or "checkpoint directory"
        known = "; ".join(f"{f.name} ({f.distribution}): {f.description}" for f in formats.formats.values())
        return _consolidate_error(
            f"{str(directory)!r} is not a {kinds}. Point `fabric consolidate` to the directory fabric.save wrote. "
            f"Layouts known: {known or 'none'}; an add-on's layout needs the add-on installed and loaded "
            "(see `fabric plugins`)."
        )
    try:
        print(resolve(checkpoint_format.consolidate)(directory, output, args))
    except UnsafeCheckpointError as err:
        return _consolidate_error(f"{err} Here: `fabric consolidate --no-weights-only {args.directory}`.")
    except (OSError, ValueError, CheckpointError) as err:
        return _consolidate_error(str(err))
    return 0


def _consolidate_error(message: str) -> int:
    print(f"fabric consolidate: error: {message}", file=sys.stderr)
    return 2


def consolidate_sharded(directory: Path, output: Path, args: argparse.Namespace) -> str:
    """fabric-core's own checkpoint format: a ``torch.distributed.checkpoint`` directory (FSDP, model_parallel)."""
    from fabric_core.strategies.sharded_checkpoint import consolidate

    consolidate(directory, output, weights_only=args.weights_only)
    return f"wrote {output}"


_RUN_USAGE = """\
%(prog)s [options] script.py [script args]
       %(prog)s [options] -m package.module [module args]"""

_RUN_DESCRIPTION = """\
Launch a script (or, with -m, a module) on one or more devices and nodes through torchrun.

The options reach the script's Fabric() through FABRIC_* environment variables: they
override its defaults, and a different value in the code (Fabric(strategy="ddp_spawn")
with --strategy ddp) stops the run with an error. Options go before the script; what
follows the script is passed to it unchanged."""

_RUN_EPILOG = """\
examples:
  fabric run --accelerator cpu --devices 2 train.py --epochs 3
  fabric run --devices 0,1 --strategy ddp --precision bf16-mixed -m mypackage.train
  fabric run --devices 8 --num-nodes 2 --node-rank 0 --main-address 10.0.0.1 train.py  # on node 0
  fabric run --devices 8 --num-nodes 2 --node-rank 1 --main-address 10.0.0.1 train.py  # on node 1"""


def _add_run_parser(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="launch a script on one or more devices and nodes (through torchrun)",
        usage=_RUN_USAGE,
        description=_RUN_DESCRIPTION,
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    run.add_argument(
        "--accelerator",
        default="auto",
        metavar="NAME",
        help="cpu, cuda, mps, gpu or any registered accelerator (default: %(default)s, the best available)",
    )
    run.add_argument(
        "--strategy",
        metavar="NAME",
        help="ddp or any registered strategy (default: the script's choice, else auto)",
    )
    run.add_argument(
        "--devices",
        default="1",
        metavar="DEVICES",
        help="devices per node: a number, -1 for all (on cpu: one per core), auto, or indices such as 0,1 "
        "(cuda); one process each (default: %(default)s)",
    )
    run.add_argument(
        "--num-nodes", "--num_nodes", type=int, default=1, metavar="N", help="number of nodes (default: %(default)s)"
    )
    run.add_argument(
        "--node-rank",
        "--node_rank",
        type=int,
        default=0,
        metavar="RANK",
        help="this node's rank, from 0 to num-nodes - 1 (default: %(default)s)",
    )
    run.add_argument(
        "--main-address",
        "--main_address",
        default="127.0.0.1",
        metavar="HOST",
        help="address of the node with rank 0 (default: %(default)s)",
    )
    run.add_argument(
        "--main-port",
        "--main_port",
        type=int,
        default=29400,
        metavar="PORT",
        help="port on the node with rank 0 for the rendezvous (default: %(default)s)",
    )
    run.add_argument(
        "--precision",
        metavar="NAME",
        help="32-true, bf16-mixed, 16-mixed, ... or any registered precision (default: the script's choice)",
    )
    run.add_argument(
        "-m",
        "--module",
        action="store_true",
        help="run a module, as python -m does: fabric run [options] -m package.module [args]",
    )
    run.add_argument("script", nargs="?", metavar="script.py", help="the script (or, with -m, the module) to run")
    run.add_argument("script_args", nargs=argparse.REMAINDER, metavar="args", help="arguments for the script")
    run.set_defaults(handler=_run, run_parser=run)


def _run(args: argparse.Namespace) -> int:
    from fabric_core._run import run_command

    return run_command(args, args.run_parser)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        result: int = handler(args)
    except BrokenPipeError:
        # The reader went away (`fabric plugins --json | head`): not an error of ours.
        sys.stderr.close()
        return 0
    return result


if __name__ == "__main__":
    sys.exit(main())
