"""Metrics to a CSV file: ``root_dir/name/version_N/metrics.csv`` (Lightning's layout)."""

from __future__ import annotations

import csv
import os
import re
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fabric_core.loggers.logger import Logger
from fabric_core.utilities.apply_func import convert_tensors_to_scalars
from fabric_core.utilities.rank_zero import rank_zero_only

_VERSION = re.compile(r"^version_(\d+)$")


class CSVLogger(Logger):
    """Log metrics to ``root_dir/name/version_N/metrics.csv`` on global rank 0.

    Rows are buffered and written every ``flush_logs_every_n_steps`` calls and at the end of
    the run. When a metric appears that earlier rows lacked, the file is rewritten with the
    wider header, so no column is ever lost. Without an explicit ``step``, the step counts
    the calls to :meth:`log_metrics` for the whole run (Lightning's CSV logger restarts it
    after every flush; we do not).

    :param root_dir: the folder for all experiments.
    :param name: the experiment's folder under ``root_dir`` (``""`` or ``None`` for none).
    :param version: an int (``version_N``) or a folder name; the next free number when omitted.
    :param prefix: prepended to every metric name, joined with ``-``.
    :param flush_logs_every_n_steps: how many ``log_metrics`` calls to buffer.
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
        if not isinstance(flush_logs_every_n_steps, int) or flush_logs_every_n_steps < 1:
            raise ValueError(
                f"CSVLogger(flush_logs_every_n_steps={flush_logs_every_n_steps!r}): expected an int of 1 or more."
            )
        self._root_dir = os.fspath(root_dir)
        self._name = name or ""
        self._version = version
        self._prefix = prefix
        self._flush_every = flush_logs_every_n_steps
        self._rows: list[dict[str, Any]] = []
        self._columns: list[str] = []
        self._calls = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int | str:
        if self._version is None:
            self._version = self._next_version()
        return self._version

    @property
    def root_dir(self) -> str:
        return self._root_dir

    @property
    def log_dir(self) -> str:
        version = self.version if isinstance(self.version, str) else f"version_{self.version}"
        return os.path.join(self._root_dir, self._name, version)

    @property
    def metrics_file_path(self) -> str:
        return os.path.join(self.log_dir, self.METRICS_FILE)

    @property
    def experiment(self) -> CSVLogger:
        """This logger (Lightning returns its writer; the writing methods live here)."""
        return self

    def _next_version(self) -> int:
        folder = Path(self._root_dir, self._name)
        if not folder.is_dir():
            return 0
        found = [int(m.group(1)) for child in folder.iterdir() if child.is_dir() and (m := _VERSION.match(child.name))]
        return max(found) + 1 if found else 0

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace | None = None, *args: Any, **kwargs: Any) -> None:
        """Write ``params`` to ``hparams.yaml`` next to the metrics (simple ``key: value`` lines)."""
        if params is None:
            return
        values = vars(params) if isinstance(params, Namespace) else dict(params)
        os.makedirs(self.log_dir, exist_ok=True)
        with open(os.path.join(self.log_dir, self.HPARAMS_FILE), "w", encoding="utf-8") as file:
            for key, value in values.items():
                file.write(f"{key}: {value!r}\n")

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        values = convert_tensors_to_scalars(dict(metrics))
        if self._prefix:
            values = {f"{self._prefix}{self.LOGGER_JOIN_CHAR}{key}": value for key, value in values.items()}
        row = {"step": self._calls if step is None else step, **values}
        self._calls += 1
        self._rows.append(row)
        if len(self._rows) >= self._flush_every:
            self.save()

    @rank_zero_only
    def save(self) -> None:
        """Append the buffered rows to ``metrics.csv`` (rewriting it if new columns appeared)."""
        if not self._rows:
            return
        path = self.metrics_file_path
        os.makedirs(self.log_dir, exist_ok=True)
        new_columns = [key for row in self._rows for key in row if key not in self._columns]
        new_columns = list(dict.fromkeys(new_columns))
        if not self._columns and os.path.exists(path):
            # Appending to a version written by an earlier run: continue its columns.
            with open(path, newline="", encoding="utf-8") as file:
                self._columns = next(csv.reader(file), [])
            new_columns = [key for key in new_columns if key not in self._columns]
        if new_columns and os.path.exists(path) and self._columns:
            with open(path, newline="", encoding="utf-8") as file:
                previous = list(csv.DictReader(file))
            self._columns += new_columns
            rows, mode = previous + self._rows, "w"
        elif not os.path.exists(path):
            self._columns += new_columns
            rows, mode = self._rows, "w"
        else:
            rows, mode = self._rows, "a"
        with open(path, mode, newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=self._columns)
            if mode == "w":
                writer.writeheader()
            writer.writerows(rows)
        self._rows = []

    def finalize(self, status: str) -> None:
        self.save()

    def __repr__(self) -> str:
        return f"CSVLogger(root_dir={self._root_dir!r}, name={self._name!r}, version={self._version!r})"
