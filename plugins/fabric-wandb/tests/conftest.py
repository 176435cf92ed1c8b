"""Shared setup for fabric-wandb's tests.

These tests run with plugin autoload **on**: they test the add-on as users get it, found
through its entry point. Each test starts from a clean environment (the kit's
:func:`fabric_core.testing.isolated_environment`: no ``FABRIC_*`` switch or launcher
variable leaking in, rank-zero output on rank 0), and subprocesses get one without them.

Nothing reaches the network or the home directory: W&B runs offline (``WANDB_MODE=offline``),
and its run folders, settings, caches and artifact staging all live under the test's
temporary folder.

What a run logged is read back from the run's own transaction log, the ``run-<id>.wandb``
file that ``wandb sync`` uploads, through the ``run_file`` fixture (:class:`RunFile`).
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fabric_core.testing import ScriptRun, isolated_environment
from fabric_core.testing import clean_environment as clean_process_environment
from fabric_core.testing import run_script as run_program

#: what the ``run_script`` fixture returns (``returncode``, ``output``; ``check()`` asserts success)
Run = ScriptRun


def wandb_environment(home: Path) -> dict[str, str]:
    """W&B offline and quiet, with every folder it writes to under ``home``."""
    return {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CONSOLE": "off",  # no capture of the test's own stdout into the run
        "WANDB_DISABLE_GIT": "true",
        "WANDB_DIR": str(home / "runs"),
        "WANDB_CONFIG_DIR": str(home / "config"),
        "WANDB_CACHE_DIR": str(home / "cache"),
        "WANDB_DATA_DIR": str(home / "data"),
        "WANDB_ARTIFACT_DIR": str(home / "artifacts"),
    }


def clean_environment(home: Path, **overrides: str) -> dict[str, str]:
    """:func:`fabric_core.testing.clean_environment` without this process's ``WANDB_*`` settings (a service
    token, a project), W&B sandboxed in ``home``, plus ``overrides``."""
    env = {key: value for key, value in clean_process_environment().items() if not key.startswith("WANDB_")}
    env.update(wandb_environment(home))
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def _wandb_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One W&B home per session: W&B reads its settings once per process, at its first run."""
    return tmp_path_factory.mktemp("wandb-home")


@pytest.fixture(autouse=True)
def _autoload_on(monkeypatch: pytest.MonkeyPatch, _wandb_home: Path, tmp_path: Path) -> Iterator[None]:
    for key in [key for key in os.environ if key.startswith("WANDB_")]:
        monkeypatch.delenv(key)  # a service token or settings of this process
    for key, value in wandb_environment(_wandb_home).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))  # read by WandbLogger itself, so per test
    with isolated_environment(monkeypatch, autoload=True):
        yield
    _finish_leftover_run()


def _finish_leftover_run() -> None:
    """A test that left a run open (one given as ``experiment=``) must not hand it to the next test."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.run.finish()


@pytest.fixture
def clean_env(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """:func:`clean_environment` with W&B's folders under ``tmp_path/wandb-home``, for tests that start processes."""
    return lambda **overrides: clean_environment(tmp_path / "wandb-home", **overrides)


@pytest.fixture
def run_script(tmp_path: Path) -> Callable[..., Run]:
    """Write ``source`` to ``tmp_path/script.py`` and run it in ``tmp_path``; stdout and stderr together.

    The run (:func:`fabric_core.testing.run_script`) starts from this process's environment, whose
    ``WANDB_*`` settings ``_autoload_on`` made; W&B's folders are moved under ``tmp_path/wandb-home``.
    """

    def run(source: str, *args: str, timeout: float = 240, env: dict[str, str] | None = None) -> Run:
        environment = {**wandb_environment(tmp_path / "wandb-home"), **(env or {})}
        return run_program(tmp_path, source, *args, timeout=timeout, env=environment)

    return run


# -- reading a run back ------------------------------------------------------------------------

#: The transaction log's framing: LevelDB's log format (32 KiB blocks, records split across
#: them) behind a 7-byte header, each piece with a CRC-32 of its type and data.
_HEADER = struct.Struct("<4sHB")
_PIECE = struct.Struct("<IHB")
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def read_records(path: str | Path) -> list[Any]:
    """Every record of a ``run-<id>.wandb`` file, as W&B's own protobuf ``Record`` messages."""
    from wandb.proto.wandb_internal_pb2 import Record

    data = Path(path).read_bytes()
    ident, magic, version = _HEADER.unpack_from(data)
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"{path} is not a W&B transaction log"
    records, pending, position = [], b"", _HEADER.size
    while position + _PIECE.size <= len(data):
        if _BLOCK - position % _BLOCK < _PIECE.size:  # a block's tail too short for a header is padding
            position += _BLOCK - position % _BLOCK
            continue
        checksum, length, kind = _PIECE.unpack_from(data, position)
        piece = data[position + _PIECE.size : position + _PIECE.size + length]
        if len(piece) < length:  # the tail of a file still being written
            break
        position += _PIECE.size + length
        if kind == 0 and length == 0:  # zero fill at the end of a block
            continue
        assert zlib.crc32(piece, zlib.crc32(bytes([kind]))) == checksum, f"{path}: a damaged record at {position}"
        pending = piece if kind in (_FULL, _FIRST) else pending + piece
        if kind in (_FULL, _LAST):
            records.append(Record.FromString(pending))
    return records


def _keys(item: Any) -> list[str]:
    """An item's key path: ``["loss"]``, or ``["samples", "captions"]`` for a value W&B split up."""
    return [item.key] if item.key else list(item.nested_key)


def _nest(items: Any) -> dict[str, Any]:
    """Items of a history, config or summary record as one dict, nested where their keys are."""
    result: dict[str, Any] = {}
    for item in items:
        *parents, last = _keys(item)
        target = result
        for parent in parents:
            target = target.setdefault(parent, {})
        target[last] = json.loads(item.value_json)
    return result


class RunFile:
    """One W&B run as its transaction log holds it: history rows, config, exit code, artifacts.

    W&B's service process writes the file, and closes it a moment after ``run.finish()``
    returned (at the latest when the process exits). Reading waits, up to ``wait`` seconds,
    for the record of the run's end; a run that never finished is read as it is then.
    """

    def __init__(self, folder: str | Path, wait: float = 60.0) -> None:
        self.folder = Path(folder)
        (self.path,) = self.folder.glob("run-*.wandb")
        deadline = time.monotonic() + wait
        self.records = read_records(self.path)
        while not self.of_type("exit") and time.monotonic() < deadline:
            time.sleep(0.05)
            self.records = read_records(self.path)

    def of_type(self, kind: str) -> list[Any]:
        return [getattr(record, kind) for record in self.records if record.WhichOneof("record_type") == kind]

    def run(self) -> Any:
        (run,) = self.of_type("run")
        return run

    def history(self) -> list[dict[str, Any]]:
        """Each ``log`` call's row, W&B's own keys (``_step``, ``_runtime``, ``_timestamp``) left out."""
        rows = []
        for history in self.of_type("history"):
            rows.append({key: value for key, value in _nest(history.item).items() if not key.startswith("_")})
        return rows

    def metric(self, name: str) -> list[tuple[int | None, Any]]:
        """``(trainer/global_step, value)`` of every row that holds ``name``, in the order logged."""
        return [(row.get("trainer/global_step"), row[name]) for row in self.history() if name in row]

    def config(self) -> dict[str, Any]:
        """The run's config: its start values, then every update (W&B's own ``_wandb`` key left out)."""
        config: dict[str, Any] = {}
        for record in [self.run().config, *self.of_type("config")]:
            config.update(_nest(record.update))
        config.pop("_wandb", None)
        return config

    def exit_code(self) -> int | None:
        """The exit code the run finished with, or ``None`` when it never finished."""
        exits = self.of_type("exit")
        return exits[-1].exit_code if exits else None

    def artifacts(self, type: str = "model") -> list[Any]:
        return [artifact for artifact in self.of_type("artifact") if artifact.type == type]


def find_run_folders(save_dir: str | Path) -> list[Path]:
    """The run folders W&B made under ``save_dir`` (``save_dir/wandb/offline-run-<time>-<id>``)."""
    return sorted(path for path in Path(save_dir, "wandb").glob("*run-*") if path.is_dir())


@pytest.fixture
def run_folders() -> Callable[[str | Path], list[Path]]:
    """``run_folders(save_dir)``: the run folders under ``save_dir`` (see :func:`find_run_folders`)."""
    return find_run_folders


@pytest.fixture
def run_file() -> Callable[[str | Path], RunFile]:
    """``run_file(folder)``: the run in ``folder`` (see :class:`RunFile`)."""
    return RunFile
