"""``fabric_core.loggers.CSVLogger`` as Lightning Fabric documents it."""

from __future__ import annotations

import csv
from argparse import Namespace
from pathlib import Path

import pytest

from fabric_core.loggers import CSVLogger, Logger


def _read(path: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames or []), list(reader)


def test_layout_and_columns_in_lightnings_order(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, name="exp")
    assert isinstance(logger, Logger)
    logger.log_metrics({"val_loss": 0.5, "acc": 0.9, "epoch": 0}, step=0)
    logger.finalize("success")
    assert logger.log_dir == str(tmp_path / "exp" / "version_0")
    header, rows = _read(logger.metrics_file_path)
    assert header == ["acc", "epoch", "step", "val_loss"]
    assert rows == [{"acc": "0.9", "epoch": "0", "step": "0", "val_loss": "0.5"}]


def test_save_is_called_on_the_flush_schedule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=3)
    logged: list[int] = []
    saved_after: list[int] = []
    original_save = logger.save

    def recording_save() -> None:
        saved_after.append(logged[-1])
        original_save()

    monkeypatch.setattr(logger, "save", recording_save)
    for step in range(7):
        logged.append(step)
        logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    assert saved_after == [2, 5]  # (step + 1) % 3 == 0
    assert [row["step"] for row in _read(logger.metrics_file_path)[1]] == ["0", "1", "2", "3", "4", "5"]


def test_reusing_a_version_warns_and_does_not_mix_old_rows(tmp_path: Path) -> None:
    first = CSVLogger(tmp_path, version=3)
    first.log_metrics({"old": 1.0}, step=0)
    first.finalize("success")
    second = CSVLogger(tmp_path, version=3)
    with pytest.warns(UserWarning, match="exists and is not empty"):
        second.log_metrics({"new": 2.0}, step=0)
    second.finalize("success")
    header, rows = _read(second.metrics_file_path)
    assert header == ["new", "step"]
    assert rows == [{"new": "2.0", "step": "0"}]


def test_next_version_after_the_existing_ones(tmp_path: Path) -> None:
    (tmp_path / "lightning_logs" / "version_4").mkdir(parents=True)
    (tmp_path / "lightning_logs" / "version_x").mkdir()
    assert CSVLogger(tmp_path).version == 5


def test_log_hyperparams_takes_a_dict_or_a_namespace_and_merges(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    logger = CSVLogger(tmp_path)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_hyperparams(Namespace(batch_size=32))
    assert yaml.safe_load(Path(logger.log_dir, "hparams.yaml").read_text()) == {"lr": 0.1, "batch_size": 32}
