"""Extending the ``fabric`` command line from a plugin: the ``fabric_register_commands`` hook.

A plugin's ``fabric_register_commands(commands)`` gets a :class:`Commands` and may

* add a subcommand, ``fabric <name> ...``, with :meth:`Commands.add`;
* teach ``fabric consolidate`` a checkpoint layout with :meth:`Commands.add_checkpoint_format`:
  ``fabric consolidate DIR`` asks each format, in registration order, whether ``DIR`` is
  one of its checkpoints, and hands it to the first that says yes.

Functions are given as callables or as lazily imported ``"module:function"`` strings, so an
entry-point module never imports what its commands need. Discovery calls the hook once per
process, like the other registration hooks; a plugin that takes one of the core's command
names (``run``, ``plugins``, ``doctor``, ``consolidate``) or a name another plugin took is
not loaded, with an error that says which and how to block it.

Example (the fabric-deepspeed add-on)::

    @hookimpl
    def fabric_register_commands(commands):
        commands.add_checkpoint_format(
            "deepspeed",
            detect="fabric_deepspeed.cli:is_deepspeed_checkpoint",
            consolidate="fabric_deepspeed.cli:consolidate_command",
            arguments="fabric_deepspeed.cli:add_consolidate_arguments",
            description="a DeepSpeed checkpoint folder (fabric.save with strategy='deepspeed*')",
        )
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

__all__ = ["CORE_COMMANDS", "CheckpointFormat", "Command", "Commands", "resolve"]

#: The subcommands of fabric-core's own ``fabric`` command; plugins cannot take these names.
CORE_COMMANDS: tuple[str, ...] = ("run", "plugins", "doctor", "consolidate")

#: A function, or a ``"module:function"`` string imported when it is first needed.
Target = Callable[..., Any] | str


def resolve(target: Target) -> Any:
    """The function ``target`` stands for, importing its module when it is a ``"module:function"`` string."""
    if not isinstance(target, str):
        return target
    module_name, _, attribute = target.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in attribute.split(".") if attribute else []:
        value = getattr(value, part)
    return value


@dataclass(frozen=True)
class Command:
    """``fabric <name>``: ``arguments(parser)`` adds its options, ``run(args)`` returns the exit status."""

    name: str
    run: Target
    help: str
    description: str = ""
    arguments: Target | None = None
    distribution: str = "unknown"


@dataclass(frozen=True)
class CheckpointFormat:
    """A checkpoint layout ``fabric consolidate`` can turn into one file.

    ``detect(directory) -> bool`` says whether ``directory`` is one; ``consolidate(directory,
    output, args) -> str`` writes ``output`` and returns the line to print (raising
    ``ValueError``, ``OSError`` or :class:`~fabric_core.errors.CheckpointError` with a
    message for a problem the user can fix); ``arguments(group)`` adds options of its own to
    ``fabric consolidate``.
    """

    name: str
    detect: Target
    consolidate: Target
    description: str
    arguments: Target | None = None
    distribution: str = "unknown"


def _check_target(what: str, target: object) -> None:
    if not (callable(target) or (isinstance(target, str) and ":" in target)):
        raise TypeError(f"{what} must be a function or a 'module:function' string, got {target!r}.")


class Commands:
    """What ``fabric_register_commands`` receives: the subcommands and checkpoint formats plugins add.

    :param distribution: recorded on everything added (discovery passes the plugin's).
    """

    def __init__(self, *, distribution: str = "unknown") -> None:
        self.distribution = distribution
        self.commands: dict[str, Command] = {}
        self.formats: dict[str, CheckpointFormat] = {}

    def add(
        self,
        name: str,
        run: Target,
        *,
        help: str,
        description: str = "",
        arguments: Target | None = None,
    ) -> None:
        """Add ``fabric <name>``.

        :param run: ``run(args: argparse.Namespace) -> int``, the exit status.
        :param help: one line for ``fabric --help``.
        :param description: the text of ``fabric <name> --help``.
        :param arguments: ``arguments(parser: argparse.ArgumentParser) -> None`` adds its options.
        """
        if not isinstance(name, str) or not name or name.startswith("-"):
            raise TypeError(f"A command name must be a non-empty string not starting with '-', got {name!r}.")
        _check_target(f"command {name!r}: run", run)
        if arguments is not None:
            _check_target(f"command {name!r}: arguments", arguments)
        if name in self.commands:
            raise ValueError(f"command {name!r} is added twice by {self.distribution}.")
        self.commands[name] = Command(name, run, help, description, arguments, self.distribution)

    def add_checkpoint_format(
        self,
        name: str,
        *,
        detect: Target,
        consolidate: Target,
        description: str,
        arguments: Target | None = None,
    ) -> None:
        """Teach ``fabric consolidate`` the checkpoint layout ``name`` (see :class:`CheckpointFormat`)."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"A checkpoint format name must be a non-empty string, got {name!r}.")
        for what, target in (("detect", detect), ("consolidate", consolidate)):
            _check_target(f"checkpoint format {name!r}: {what}", target)
        if arguments is not None:
            _check_target(f"checkpoint format {name!r}: arguments", arguments)
        if name in self.formats:
            raise ValueError(f"checkpoint format {name!r} is added twice by {self.distribution}.")
        self.formats[name] = CheckpointFormat(name, detect, consolidate, description, arguments, self.distribution)

    def clashes(self, other: Commands) -> list[tuple[str, str, str]]:
        """``(what, name, distribution)`` for each name of ``other`` this already has (or the core reserves)."""
        found = [("command", name, "fabric-core") for name in other.commands if name in CORE_COMMANDS]
        found += [
            ("command", name, self.commands[name].distribution) for name in other.commands if name in self.commands
        ]
        found += [
            ("checkpoint format", name, self.formats[name].distribution)
            for name in other.formats
            if name in self.formats
        ]
        return found

    def merge(self, other: Commands) -> None:
        """Add everything of ``other`` (what one plugin added); a name already present raises ``ValueError``."""
        clashes = self.clashes(other)
        if clashes:
            what, name, owner = clashes[0]
            raise ValueError(f"{what} {name!r} of {other.distribution} is already registered by {owner}.")
        self.commands.update(other.commands)
        self.formats.update(other.formats)

    def names(self) -> list[str]:
        """``"name"`` for each command and ``"consolidate:<format>"`` for each format, for listings."""
        return [*self.commands, *(f"consolidate:{name}" for name in self.formats)]

    def add_to(self, subcommands: Any) -> list[str]:
        """Add the commands to ``argparse`` subparsers; return a problem line for each that could not be."""
        problems = []
        for command in self.commands.values():
            parser = subcommands.add_parser(command.name, help=command.help, description=command.description or None)
            parser.set_defaults(handler=command.run)
            if command.arguments is not None:
                try:
                    resolve(command.arguments)(parser)
                except Exception as err:
                    problems.append(_problem(f"command {command.name!r}", command.distribution, err))
        return problems

    def detect(self, directory: Path) -> CheckpointFormat | None:
        """The first format that recognises ``directory``."""
        for checkpoint_format in self.formats.values():
            if resolve(checkpoint_format.detect)(directory):
                return checkpoint_format
        return None

    def add_format_arguments(self, parser: argparse.ArgumentParser) -> list[str]:
        """Add each format's own options to ``fabric consolidate``, in a group per format."""
        problems = []
        for checkpoint_format in self.formats.values():
            if checkpoint_format.arguments is None:
                continue
            group = parser.add_argument_group(
                f"{checkpoint_format.name} checkpoints ({checkpoint_format.distribution})",
                checkpoint_format.description,
            )
            try:
                resolve(checkpoint_format.arguments)(group)
            except Exception as err:
                problems.append(
                    _problem(f"checkpoint format {checkpoint_format.name!r}", checkpoint_format.distribution, err)
                )
        return problems


def _problem(what: str, distribution: str, err: Exception) -> str:
    return (
        f"{what} of {distribution} is unavailable: its options could not be added ({type(err).__name__}: {err}). "
        f"Reinstall {distribution}, or block it with FABRIC_BLOCK_PLUGINS={distribution}."
    )
