"""The ``fabric`` command: ``fabric plugins`` lists what is installed."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _plugins(args: argparse.Namespace) -> int:
    from fabric_core._discovery import discover

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
        other_hooks = [hook for hook in record["hooks"] if not hook.startswith("fabric_register_")]
        if other_hooks:
            print(f"    hooks: {', '.join(other_hooks)}")
    for kind, names in conflicts.items():
        for name, distributions in names.items():
            print(f"conflict: {kind} {name!r} is registered by {' and '.join(distributions)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from fabric_core import __version__

    parser = argparse.ArgumentParser(prog="fabric", description="fabric-core command line.")
    parser.add_argument("--version", action="version", version=f"fabric-core {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    plugins = commands.add_parser("plugins", help="list installed plugins, what they provide and their status")
    plugins.add_argument("--json", action="store_true", help="print JSON for machines")
    plugins.set_defaults(handler=_plugins)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
