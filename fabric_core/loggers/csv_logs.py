"""Metrics to a CSV file: ``root_dir/name/version_N/metrics.csv`` (Lightning's layout).

``root_dir`` may be a URL (``memory://``, ``s3://``, ...; :mod:`fabric_core.utilities.remote_paths`):
the files are then written through fsspec, each flush rewriting ``metrics.csv`` whole (object
stores cannot append).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import weakref
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fabric_core import _logging
from fabric_core.loggers.logger import Logger, next_version
from fabric_core.utilities.apply_func import convert_tensors_to_scalars
from fabric_core.utilities.rank_zero import rank_zero_only, rank_zero_warn
from fabric_core.utilities.remote_paths import filesystem, is_remote

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_YAML_WORDS = {"y", "n", "yes", "no", "true", "false", "on", "off", "null"}
_log = _logging.get_logger(__name__)


class CSVLogger(Logger):
    """Log metrics to ``root_dir/name/version_N/metrics.csv`` on global rank 0.

    Each :meth:`log_metrics` call is one row; the columns are the metric names and ``step``,
    sorted by name (Lightning's order). Rows are buffered and written by :meth:`save`, which
    :meth:`log_metrics` calls on Lightning's schedule, after the row of every step ``s`` with
    ``(s + 1) % flush_logs_every_n_steps == 0`` (and, so that the buffer stays bounded,
    whenever it holds ``flush_logs_every_n_steps`` rows), and at the end of the run
    (Fabric's teardown; or, as a safety net, when the logger is garbage-collected or the
    interpreter exits). When a metric appears that the file's rows lack, the file is
    rewritten with the wider header, so no column is ever lost.

    Without an explicit ``step``, the step is the number of earlier :meth:`log_metrics` calls
    of this logger (Lightning's CSV logger restarts it after every flush; this one does not).
    As in Lightning, a version folder that already holds files (a fixed ``version`` used
    again) gets a warning when the first row or hyperparameter is logged, and its old
    ``metrics.csv`` is replaced, never continued: rows of two runs never mix.

    :param root_dir: the folder for all experiments: a path, or a URL that fsspec opens.
    :param name: the experiment's folder under ``root_dir`` (``""`` or ``None`` for none).
    :param version: an int (folder ``version_N``) or a folder name; when omitted, the next
        free number after the existing ``version_N`` folders.
    :param prefix: prepended to every metric name, joined with ``-``.
    :param flush_logs_every_n_steps: how many :meth:`log_metrics` calls to buffer.
    """

    LOGGER_JOIN_CHAR = "-"
    METRICS_FILE = "metrics.csv"
    HPARAMS_FILE = "hparams.yaml"

    def __init__(
        self,
        root_dir: str | Path = "logs",
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        prefix: str = "",
        flush_logs_every_n_steps: int = 100,
    ) -> None:
        flush_every = flush_logs_every_n_steps
        if isinstance(flush_every, bool) or not isinstance(flush_every, int) or flush_every < 1:
            raise ValueError(f"CSVLogger(flush_logs_every_n_steps={flush_every!r}): expected an int of 1 or more.")
        if version is not None and (isinstance(version, bool) or not isinstance(version, (int, str))):
            raise TypeError(f"CSVLogger(version={version!r}): expected an int, a folder name or None.")
        self._root_dir = os.fspath(root_dir)
        #: the fsspec file system of a URL ``root_dir`` (``None`` for local folders)
        self._fs: Any = (
            filesystem(self._root_dir, f"CSVLogger(root_dir={self._root_dir!r})")[0]
            if is_remote(self._root_dir)
            else None
        )
        self._name = name or ""
        self._version = version
        self._prefix = prefix
        self._flush_every = flush_every
        self._hparams: dict[str, Any] = {}
        self._steps_logged = 0
        self._file: _MetricsFile | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int | str:
        """The version given, or the next free ``version_N`` number (decided on first use)."""
        if self._version is None:
            self._version = self._next_version()
        return self._version

    @property
    def root_dir(self) -> str:
        return self._root_dir

    @property
    def log_dir(self) -> str:
        """``root_dir/name/version_N`` (``root_dir/version_N`` without a name)."""
        version = self.version
        folder = version if isinstance(version, str) else f"version_{version}"
        return os.path.join(self._root_dir, self._name, folder)

    @property
    def metrics_file_path(self) -> str:
        return os.path.join(self.log_dir, self.METRICS_FILE)

    @property
    def experiment(self) -> CSVLogger:
        """This logger (Lightning returns its writer; the writing methods live here)."""
        return self

    def _next_version(self) -> int:
        if self._fs is None:
            return next_version(Path(self._root_dir, self._name))
        folder = os.path.join(self._root_dir, self._name)
        names = (
            [entry.rstrip("/").rsplit("/", 1)[-1] for entry in self._fs.ls(folder, detail=False)]
            if (self._fs.isdir(folder))
            else []
        )
        found = [int(name[len("version_") :]) for name in names if re.fullmatch(r"version_\d+", name)]
        return max(found) + 1 if found else 0

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace | None = None, *args: Any, **kwargs: Any) -> None:
        """Add ``params`` to ``hparams.yaml`` next to the metrics (rewritten on every call).

        Values are written as YAML flow scalars/collections (JSON syntax, which YAML reads);
        tensors become numbers or lists, anything else unknown its ``str``.
        """
        if params is None:
            return
        values = vars(params) if isinstance(params, Namespace) else dict(params)
        self._hparams.update(values)
        self._metrics_file()  # the first write into the version folder checks what is there
        lines = [f"{_yaml_key(str(key))}: {_yaml_value(value)}\n" for key, value in self._hparams.items()]
        path = os.path.join(self.log_dir, self.HPARAMS_FILE)
        if self._fs is not None:
            self._fs.makedirs(self.log_dir, exist_ok=True)
            with self._fs.open(path, "w", encoding="utf-8") as remote:
                remote.writelines(lines)
            return
        os.makedirs(self.log_dir, exist_ok=True)
        with open(path, "w", encoding="utf-8") as file:
            file.writelines(lines)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Buffer one row; a one-element tensor becomes a number (a larger one raises ``ValueError``).

        A metric named ``step`` is overwritten by the step column (as in Lightning); use
        ``prefix`` or another name to keep it.
        """
        values: dict[str, Any] = convert_tensors_to_scalars(dict(metrics))
        if self._prefix:
            values = {f"{self._prefix}{self.LOGGER_JOIN_CHAR}{key}": value for key, value in values.items()}
        values.pop("step", None)
        if step is None:
            step = self._steps_logged
        self._steps_logged += 1
        metrics_file = self._metrics_file()
        metrics_file.rows.append({"step": step, **values})
        if (step + 1) % self._flush_every == 0 or len(metrics_file.rows) >= self._flush_every:
            self.save()

    def _metrics_file(self) -> _MetricsFile:
        if self._file is None:
            self._check_log_dir()
            # Absolute, so that rows flushed later (at exit, after a chdir) land in the same file.
            path = self.metrics_file_path if self._fs is not None else os.path.abspath(self.metrics_file_path)
            self._file = _MetricsFile(path, self._fs)
            # Buffered rows survive a Fabric that is never torn down: they are written when this
            # logger is garbage-collected, or at interpreter exit.
            weakref.finalize(self, _flush_at_exit, self._file)
        return self._file

    def _check_log_dir(self) -> None:
        """Warn when the version folder holds files already, and drop its old ``metrics.csv``."""
        log_dir = self.log_dir
        if self._fs is not None:
            used = self._fs.isdir(log_dir) and bool(self._fs.ls(log_dir, detail=False))
        else:
            used = os.path.isdir(log_dir) and bool(os.listdir(log_dir))
        if used:
            rank_zero_warn(
                f"CSVLogger: the log folder {log_dir!r} exists and is not empty (version={self.version!r} was used "
                "before). Its metrics.csv is replaced by this run's; use a new version (or version=None for the next "
                "free one) to keep it."
            )
            metrics = os.path.join(log_dir, self.METRICS_FILE)
            if self._fs is not None and self._fs.isfile(metrics):
                self._fs.rm(metrics)
            elif self._fs is None and os.path.isfile(metrics):
                os.remove(metrics)

    @rank_zero_only
    def save(self) -> None:
        """Write the buffered rows to ``metrics.csv``."""
        if self._file is not None:
            self._file.flush()

    def __getstate__(self) -> dict[str, Any]:
        # A copy sent to another process (``ddp_spawn``) starts with an empty buffer: rows
        # buffered here are written by this process, not a second time by the copy.
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def __repr__(self) -> str:
        return f"CSVLogger(root_dir={self._root_dir!r}, name={self._name!r}, version={self._version!r})"


class _MetricsFile:
    """The header and the buffered rows of one ``metrics.csv``.

    Kept apart from the logger (and holding no reference to it) so that a finalizer can
    write the rows after the logger itself is gone.
    """

    def __init__(self, path: str, fs: Any = None) -> None:
        self.path = path
        self.fs = fs  # an fsspec file system for a URL, else None
        self.columns: list[str] = []  # the header of the file, as written
        self.rows: list[dict[str, Any]] = []

    def flush(self) -> None:
        """Append the buffered rows; rewrite the file when they bring columns its header lacks."""
        if not self.rows:
            return
        if self.fs is not None:
            self._rewrite_remote()
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        exists = os.path.isfile(self.path)
        # The first flush into an existing file (an earlier run with this version) continues it.
        columns = self.columns or (_read_header(self.path) if exists else [])
        seen = dict.fromkeys(key for row in self.rows for key in row)
        new_columns = [key for key in seen if key not in columns]
        if exists and not new_columns:
            with open(self.path, "a", newline="", encoding="utf-8") as file:
                csv.DictWriter(file, fieldnames=columns).writerows(self.rows)
        else:
            columns = sorted([*columns, *new_columns])  # Lightning's column order: by name
            earlier = _read_rows(self.path) if exists else []
            # Write a new file beside the old one and swap it in: a crash mid-write loses nothing.
            partial = f"{self.path}.partial"
            with open(partial, "w", newline="", encoding="utf-8") as file:
                writer = csv.DictWriter(file, fieldnames=columns)
                writer.writeheader()
                writer.writerows(earlier + self.rows)
            os.replace(partial, self.path)
        self.columns = columns
        self.rows = []

    def _rewrite_remote(self) -> None:
        """Write the file whole again, earlier rows first: object stores cannot append."""
        earlier: list[dict[str, Any]] = []
        if self.fs.isfile(self.path):
            with self.fs.open(self.path, "r", newline="", encoding="utf-8") as file:
                earlier = list(csv.DictReader(file))
        columns = sorted(dict.fromkeys([*self.columns, *(key for row in earlier + self.rows for key in row)]))
        self.fs.makedirs(os.path.dirname(self.path), exist_ok=True)
        with self.fs.open(self.path, "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=columns)
            writer.writeheader()
            writer.writerows(earlier + self.rows)
        self.columns = columns
        self.rows = []


def _read_header(path: str) -> list[str]:
    with open(path, newline="", encoding="utf-8") as file:
        return next(csv.reader(file), [])


def _read_rows(path: str) -> list[dict[str, Any]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def _flush_at_exit(metrics_file: _MetricsFile) -> None:
    try:
        metrics_file.flush()
    except Exception as err:  # a finalizer must not raise; say what was lost instead
        _log.warning("CSVLogger could not write buffered metrics", path=metrics_file.path, error=repr(err))


def _yaml_key(key: str) -> str:
    """``key`` bare when YAML reads it back as that same string, quoted otherwise."""
    if _PLAIN_KEY.match(key) and key.lower() not in _YAML_WORDS:
        return key
    return json.dumps(key)


def _yaml_value(value: Any) -> str:
    """``value`` as a YAML flow value (JSON, plus YAML's spelling of NaN and infinities)."""
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    try:
        return json.dumps(value, allow_nan=False, default=_yaml_fallback)
    except (TypeError, ValueError):  # NaN or infinity inside a collection, keys JSON cannot take
        return json.dumps(str(value))


def _yaml_fallback(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Namespace):
        return vars(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return str(value)
