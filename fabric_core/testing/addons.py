"""Checks every add-on's suite makes of its packaging: the entry point, ``fabric plugins``, imports, docs.

An add-on is found through its ``fabric_core`` entry point, listed by ``fabric plugins``,
imported by discovery in every process, and documented by a page whose examples users
copy. Each check here runs the real thing (discovery, the command in a child process, a
script in a clean process, the page's code) and asserts with a message that names what
differed:

* :func:`check_entry_point`: discovery loaded the distribution, and it registered
  exactly the names it should;
* :func:`check_listed_by_fabric_plugins`: ``fabric plugins`` and ``fabric plugins --json``
  show it loaded, with its entry point and its names;
* :func:`check_import_is_light`: ``import fabric_core``, the entry point and a run that
  does not select the add-on import none of the heavy library;
* :func:`import_failure`: what an add-on raises, in a fresh process, where its library is
  missing or broken (the message users see, and its cause);
* :func:`run_docs_examples`: the blocks of a docs page marked
  ``<!-- run: <distribution> -->`` run as written.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fabric_core.testing.environ import clean_environment
from fabric_core.testing.processes import ScriptRun, run_script

__all__ = [
    "ImportFailure",
    "check_entry_point",
    "check_import_is_light",
    "check_listed_by_fabric_plugins",
    "import_failure",
    "run_docs_examples",
]


def check_entry_point(distribution: str, provides: Mapping[str, Collection[str]]) -> Any:
    """Assert that discovery loaded ``distribution`` and that it registered exactly ``provides``.

    :param provides: kind (``"strategies"``, ``"loggers"``, ...) to the names registered
        under it; every kind the distribution provides must be given.
    :returns: the distribution's discovery record, for further checks.
    """
    from fabric_core.discovery import discover

    records = discover().records_for(distribution)
    assert len(records) == 1, f"discovery found {len(records)} records of {distribution!r}: {records}"
    (record,) = records
    assert record.status == "loaded", f"{distribution} did not load: {record.reason}"
    registered = {kind: set(names) for kind, names in record.provides.items() if names}
    expected = {kind: set(names) for kind, names in provides.items()}
    assert registered == expected, f"{distribution} registered {registered}, expected {expected}"
    return record


def _provided(text: str, heading: str, kind: str) -> set[str] | None:
    """The names of ``kind`` in the section under ``heading`` of ``fabric plugins``'s text (``    loggers: a, b``)."""
    lines = text.splitlines()
    start = next(index for index, line in enumerate(lines) if heading in line)
    for line in lines[start + 1 :]:
        if not line.startswith(" "):
            break
        if line.startswith(f"    {kind}: "):
            return {name.strip() for name in line.split(":", 1)[1].split(",")}
    return None


def check_listed_by_fabric_plugins(
    distribution: str,
    *,
    version: str,
    entry_point: str,
    provides: Mapping[str, Collection[str]],
    command: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> None:
    """Assert that ``fabric plugins`` and ``fabric plugins --json`` list ``distribution`` as loaded.

    Both run in a child process, as users run them. The text must hold the line
    ``<distribution> <version>  [loaded]  (<entry_point>)`` and, for each kind of
    ``provides``, the line ``    <kind>: <names>``; the JSON must hold one record of the
    distribution, loaded, with that entry point and those names.

    :param entry_point: as the entry point is written, ``"name = module"``.
    :param command: how to start the command (``["/venv/bin/fabric"]``); by default
        ``python -m fabric_core.cli`` with this interpreter.
    :param env: the child's environment; by default :func:`clean_environment`.
    """
    start = list(command) or [sys.executable, "-m", "fabric_core.cli"]
    environment = dict(env) if env is not None else clean_environment()
    expected = {kind: set(names) for kind, names in provides.items()}

    def fabric_plugins(*flags: str) -> str:
        result = subprocess.run(
            [*start, "plugins", *flags], env=environment, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"fabric plugins {' '.join(flags)} failed:\n{result.stdout}{result.stderr}"
        return result.stdout

    text = fabric_plugins()
    heading = f"{distribution} {version}  [loaded]  ({entry_point})"
    assert heading in text, f"fabric plugins does not show {heading!r}:\n{text}"
    listed = {kind: _provided(text, heading, kind) for kind in expected}
    assert listed == expected, f"fabric plugins lists {listed} for {distribution}, expected {expected}:\n{text}"

    payload = json.loads(fabric_plugins("--json"))
    records = [record for record in payload["plugins"] if record["distribution"] == distribution]
    assert len(records) == 1, f"fabric plugins --json lists {len(records)} records of {distribution}: {records}"
    (record,) = records
    assert record["status"] == "loaded", record
    assert record["entry_point"] == entry_point, record
    listed = {kind: set(record["provides"].get(kind, ())) for kind in expected}
    assert listed == expected, f"fabric plugins --json lists {listed} for {distribution}, expected {expected}"


_LIGHT = """
import sys

HEAVY = {heavy!r}


def heavy_modules():
    return sorted(name for name in sys.modules if any(name == top or name.startswith(top + ".") for top in HEAVY))


import fabric_core

assert not heavy_modules(), ("import fabric_core", heavy_modules())
from fabric_core import Fabric

before = set(sys.modules)
import {module}

added = sorted(set(sys.modules) - before)
assert all(name == {module!r} or name.startswith("fabric_core.") for name in added), ("import {module}", added)
assert not heavy_modules(), ("import {module}", heavy_modules())

from fabric_core.discovery import discover

(record,) = discover().records_for({distribution!r})
assert record.status == "loaded", record
fabric = Fabric({arguments})  # a whole run's discovery and selection, without the add-on
assert not heavy_modules(), ({label!r}, heavy_modules())
for name in {lazy!r}:
    assert name not in sys.modules, name + " imported by a run that does not select it"
{then}
print("LIGHT", added)
"""


def check_import_is_light(
    folder: Path,
    module: str,
    distribution: str,
    *,
    heavy: Sequence[str],
    lazy: Sequence[str] = (),
    arguments: str = 'accelerator="cpu", devices=1',
    then: str = "",
    env: Mapping[str, str] | None = None,
    timeout: float = 240,
) -> ScriptRun:
    """Assert, in a fresh process, that the add-on costs nothing until a run selects it.

    A script run in ``folder`` (with :func:`run_script`, so in a clean environment)
    checks that none of the ``heavy`` packages is imported by ``import fabric_core``, by
    ``import <module>`` (which adds no module but itself and ``fabric_core.*``), or by
    discovery and ``Fabric(<arguments>)``; that discovery loaded ``distribution``; and
    that none of the ``lazy`` modules (the add-on's own, the one an entry names) is
    imported by then. ``then`` is more code for the same script, run afterwards, with
    ``sys``, ``Fabric``, ``fabric`` and ``heavy_modules()`` at hand: what selecting the
    add-on imports, and when.

    :param heavy: top-level packages or dotted prefixes (``"torch.utils.tensorboard"``):
        each, and everything below it, counts.
    :param env: variables for the script on top of the clean environment.
    :returns: the run (it succeeded; its output ends with ``LIGHT [<modules added>]``).
    """
    source = _LIGHT.format(
        heavy=tuple(heavy),
        module=module,
        distribution=distribution,
        arguments=arguments,
        label=f"Fabric({arguments})",
        lazy=tuple(lazy),
        then=textwrap.dedent(then),
    )
    run = run_script(folder, source, timeout=timeout, env=dict(env or {}))
    run.check()
    assert "LIGHT" in run.output, run.output
    return run


_FAILURE = """
import json
import sys

from fabric_core import Fabric

{setup}
for name in {missing!r}:
    sys.modules[name] = None  # as if the package were not installed (or failed to import)
try:
{statement}
except ImportError as err:
    failure = {{"type": type(err).__name__, "message": str(err), "cause": repr(err.__cause__)}}
    print("IMPORT_FAILURE", json.dumps(failure))
else:
    print("NO IMPORT ERROR")
"""


@dataclass(frozen=True)
class ImportFailure:
    """The ``ImportError`` a statement raised in a fresh process (see :func:`import_failure`).

    :ivar type: the class's name (``"ModuleNotFoundError"``, ``"ImportError"``).
    :ivar message: ``str(error)``, what users read.
    :ivar cause: ``repr(error.__cause__)`` (``"None"`` when the error chains nothing).
    """

    type: str
    message: str
    cause: str


def import_failure(
    folder: Path,
    statement: str,
    *,
    missing: Sequence[str] = (),
    setup: str = "",
    env: Mapping[str, str] | None = None,
    timeout: float = 240,
) -> ImportFailure:
    """Run ``statement`` in a fresh process and return the ``ImportError`` it raised.

    The script (run with :func:`run_script` in ``folder``) imports ``sys`` and ``Fabric``,
    runs ``setup``, then makes each of ``missing`` fail to import
    (``sys.modules[name] = None``: a package that is not installed, or, after ``setup``
    imported the add-on, one that breaks at its first use), then runs ``statement``.
    The check fails when the script fails otherwise or the statement raises nothing.

    :param env: variables for the script on top of the clean environment (a
        ``PYTHONPATH`` that puts a broken package first, for instance).
    """
    source = _FAILURE.format(
        setup=textwrap.dedent(setup),
        missing=tuple(missing),
        statement=textwrap.indent(textwrap.dedent(statement).strip(), "    "),
    )
    run = run_script(folder, source, timeout=timeout, env=dict(env or {}))
    output = run.check()
    lines = [line for line in output.splitlines() if line.startswith("IMPORT_FAILURE ")]
    assert lines, f"{statement.strip()!r} raised no ImportError with {list(missing)} missing:\n{output}"
    return ImportFailure(**json.loads(lines[-1].split(" ", 1)[1]))


def _marked_blocks(page: Path, marker: str) -> list[tuple[int, str]]:
    """``(line, code)`` of each python block right after ``marker`` on ``page``."""
    text = page.read_text(encoding="utf-8")
    pattern = re.escape(marker) + r"\s*\n```python\n(.*?)\n```"
    matches = re.finditer(pattern, text, flags=re.DOTALL)
    return [(text[: match.start(1)].count("\n") + 1, match.group(1)) for match in matches]


def run_docs_examples(page: Path, distribution: str) -> int:
    """Run the python blocks of ``page`` marked ``<!-- run: <distribution> -->``, in order, in this process.

    fabric-core's own doc tests compile every block but run only the core's examples;
    an add-on's suite runs its page's marked blocks with this. Each block runs in a
    fresh namespace, in the current directory (``monkeypatch.chdir(tmp_path)`` first);
    an error's traceback names the page and the line. Every ``Fabric`` a block made is
    torn down afterwards. The test is skipped where the page is not there (the add-on
    tested outside the repository); a page without a marked block fails.

    :returns: how many blocks ran.
    """
    from fabric_core import Fabric

    if not page.is_file():
        pytest.skip(f"{page} is not here (the add-on is tested outside the repository)")
    marker = f"<!-- run: {distribution} -->"
    blocks = _marked_blocks(page, marker)
    assert blocks, f"{page} has no python block marked {marker}"
    for line, code in blocks:
        namespace: dict[str, object] = {"__name__": "__docs__"}
        try:
            exec(compile("\n" * (line - 1) + code, str(page), "exec"), namespace)
        finally:
            for value in namespace.values():
                if isinstance(value, Fabric):
                    value._teardown()
    return len(blocks)
