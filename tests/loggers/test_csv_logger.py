"""The built-in CSV metric logger, alone and fed by a Fabric (DESIGN.md section 8)."""

from __future__ import annotations

import csv
import gc
import json
import math
import os
import pickle
import re
import subprocess
import sys
import textwrap
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from fabric_core import Fabric
from fabric_core.loggers import CSVLogger, Logger
from fabric_core.utilities.rank_zero import rank_zero_only


def read_csv(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def steps_of(path: str | Path) -> list[int]:
    return [int(row["step"]) for row in read_csv(path)[1]]


# -- layout and versions -------------------------------------------------------------------------


def test_layout_is_root_name_version_metrics_csv(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    assert logger.root_dir == str(tmp_path)
    assert logger.name == "lightning_logs"
    assert logger.version == 0
    assert logger.log_dir == os.path.join(tmp_path, "lightning_logs", "version_0")
    assert logger.metrics_file_path == os.path.join(logger.log_dir, "metrics.csv")
    assert logger.experiment is logger
    logger.log_metrics({"loss": 1.0})
    logger.save()
    assert Path(tmp_path, "lightning_logs", "version_0", "metrics.csv").is_file()


def test_nothing_is_created_before_something_is_written(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path / "logs", name="exp")
    assert logger.log_dir == os.path.join(tmp_path, "logs", "exp", "version_0")
    logger.save()
    logger.finalize("success")
    assert not (tmp_path / "logs").exists()


def test_version_continues_after_the_highest_existing_version(tmp_path: Path) -> None:
    experiment = tmp_path / "exp"
    for folder in ("version_0", "version_3", "version_x", "other", "version_10_backup"):
        (experiment / folder).mkdir(parents=True)
    (experiment / "version_7").write_text("a file, not a version folder")
    logger = CSVLogger(tmp_path, name="exp")
    assert logger.version == 4
    assert logger.log_dir == os.path.join(tmp_path, "exp", "version_4")


def test_version_is_decided_once(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, name="exp")
    assert logger.version == 0
    (tmp_path / "exp" / "version_0").mkdir(parents=True)
    assert logger.version == 0
    assert CSVLogger(tmp_path, name="exp").version == 1


def test_consecutive_runs_get_consecutive_versions(tmp_path: Path) -> None:
    for expected in range(3):
        logger = CSVLogger(tmp_path, name="exp")
        logger.log_metrics({"x": expected})
        logger.save()
        assert logger.version == expected
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["version_0", "version_1", "version_2"]


def test_version_as_int_or_folder_name(tmp_path: Path) -> None:
    assert CSVLogger(tmp_path, name="exp", version=5).log_dir == os.path.join(tmp_path, "exp", "version_5")
    named = CSVLogger(tmp_path, name="exp", version="baseline-lr3")
    assert named.version == "baseline-lr3"
    assert named.log_dir == os.path.join(tmp_path, "exp", "baseline-lr3")
    named.log_metrics({"x": 1})
    named.save()
    assert (tmp_path / "exp" / "baseline-lr3" / "metrics.csv").is_file()


@pytest.mark.parametrize("name", ["", None])
def test_empty_name_means_no_name_folder(tmp_path: Path, name: str | None) -> None:
    (tmp_path / "version_1").mkdir()
    logger = CSVLogger(tmp_path, name=name)
    assert logger.name == ""
    assert logger.version == 2
    assert logger.log_dir == os.path.join(tmp_path, "version_2")
    logger.log_metrics({"x": 1})
    logger.save()
    assert (tmp_path / "version_2" / "metrics.csv").is_file()


@pytest.mark.parametrize("value", [0, -1, 1.5, "10", True, None])
def test_flush_interval_must_be_a_positive_int(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ValueError, match="flush_logs_every_n_steps"):
        CSVLogger(tmp_path, flush_logs_every_n_steps=value)


def test_version_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="version"):
        CSVLogger(tmp_path, version=1.5)  # type: ignore[arg-type]


# -- rows -----------------------------------------------------------------------------------------


def test_rows_are_buffered_and_flushed_every_n_calls(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=3)
    logger.log_metrics({"loss": 0.5}, step=0)
    logger.log_metrics({"loss": 0.4}, step=1)
    assert not os.path.exists(logger.metrics_file_path)
    logger.log_metrics({"loss": 0.3}, step=2)
    header, rows = read_csv(logger.metrics_file_path)
    assert header == ["loss", "step"]  # Lightning's order: by name
    assert rows == [{"step": "0", "loss": "0.5"}, {"step": "1", "loss": "0.4"}, {"step": "2", "loss": "0.3"}]
    logger.log_metrics({"loss": 0.2}, step=3)
    assert len(read_csv(logger.metrics_file_path)[1]) == 3
    logger.finalize("success")
    assert steps_of(logger.metrics_file_path) == [0, 1, 2, 3]


def test_step_counter_does_not_restart_after_a_flush(tmp_path: Path) -> None:
    # Lightning's CSV logger used len(buffer) as the step, so it went 0, 1, 0, 1, ... across flushes.
    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=2)
    for value in range(7):
        logger.log_metrics({"value": value})
    logger.save()  # an explicit save in the middle must not reset it either
    for value in range(7, 10):
        logger.log_metrics({"value": value})
    logger.finalize("success")
    _, rows = read_csv(logger.metrics_file_path)
    assert [int(row["step"]) for row in rows] == list(range(10))
    assert [int(row["value"]) for row in rows] == list(range(10))


def test_explicit_steps_are_written_as_given(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"a": 1}, step=100)
    logger.log_metrics({"b": 2}, step=100)
    logger.log_metrics({"a": 3}, step=7)
    logger.log_metrics({"a": 4})  # no step: the number of earlier calls
    logger.save()
    assert steps_of(logger.metrics_file_path) == [100, 100, 7, 3]


def test_a_metric_named_step_is_replaced_by_the_step_column(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"step": 99, "loss": 1.0}, step=4)
    logger.save()
    header, rows = read_csv(logger.metrics_file_path)
    assert header == ["loss", "step"]
    assert rows == [{"step": "4", "loss": "1.0"}]


def test_new_metrics_after_a_flush_widen_the_header_and_keep_earlier_rows(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=2)
    logger.log_metrics({"train_loss": 1.0}, step=0)
    logger.log_metrics({"train_loss": 0.9}, step=1)  # flushed: header is step,train_loss (by name)
    logger.log_metrics({"train_loss": 0.8, "lr": 0.1}, step=2)
    logger.log_metrics({"val_loss": 0.7}, step=2)  # flushed: both new columns
    logger.log_metrics({"train_loss": 0.6}, step=3)
    logger.log_metrics({"epoch": 1}, step=3)  # flushed: one more
    logger.log_metrics({"train_loss": 0.5}, step=4)
    logger.finalize("success")
    header, rows = read_csv(logger.metrics_file_path)
    assert header == ["epoch", "lr", "step", "train_loss", "val_loss"]
    assert rows == [
        {"step": "0", "train_loss": "1.0", "lr": "", "val_loss": "", "epoch": ""},
        {"step": "1", "train_loss": "0.9", "lr": "", "val_loss": "", "epoch": ""},
        {"step": "2", "train_loss": "0.8", "lr": "0.1", "val_loss": "", "epoch": ""},
        {"step": "2", "train_loss": "", "lr": "", "val_loss": "0.7", "epoch": ""},
        {"step": "3", "train_loss": "0.6", "lr": "", "val_loss": "", "epoch": ""},
        {"step": "3", "train_loss": "", "lr": "", "val_loss": "", "epoch": "1"},
        {"step": "4", "train_loss": "0.5", "lr": "", "val_loss": "", "epoch": ""},
    ]
    assert os.listdir(logger.log_dir) == ["metrics.csv"]  # no leftover from the rewrite


def test_fewer_metrics_than_the_header_leave_empty_cells(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=1)
    logger.log_metrics({"a": 1, "b": 2}, step=0)
    logger.log_metrics({"b": 3}, step=1)
    assert read_csv(logger.metrics_file_path) == (
        ["a", "b", "step"],
        [{"step": "0", "a": "1", "b": "2"}, {"step": "1", "a": "", "b": "3"}],
    )


def test_prefix_is_joined_with_a_dash(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, prefix="train")
    logger.log_metrics({"loss": 1.0, "acc": 0.5}, step=0)
    logger.save()
    header, _ = read_csv(logger.metrics_file_path)
    assert header == ["step", "train-acc", "train-loss"]


def test_tensors_become_numbers(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    metrics = {
        "scalar": torch.tensor(0.25),
        "one": torch.tensor([3]),
        "int": torch.tensor(7),
        "grad": torch.ones(()).requires_grad_(),
    }
    logger.log_metrics(metrics, step=5)
    logger.save()
    _, rows = read_csv(logger.metrics_file_path)
    assert rows == [{"step": "5", "scalar": "0.25", "one": "3", "int": "7", "grad": "1.0"}]


def test_a_tensor_of_several_elements_is_refused_clearly(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    with pytest.raises(ValueError, match=r"single-element.*shape \(2, 3\).*mean"):
        logger.log_metrics({"weights": torch.zeros(2, 3)})
    logger.log_metrics({"ok": 1})
    logger.save()
    assert read_csv(logger.metrics_file_path)[1] == [{"step": "0", "ok": "1"}]  # the bad call left no row


def test_strings_with_commas_and_quotes_round_trip(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"note": 'a, "quoted" value', "ünïcode": "✓"}, step=0)
    logger.save()
    _, rows = read_csv(logger.metrics_file_path)
    assert rows == [{"step": "0", "note": 'a, "quoted" value', "ünïcode": "✓"}]


def test_a_reused_version_warns_and_starts_a_fresh_file(tmp_path: Path) -> None:
    # Lightning's rule (this logger used to continue the earlier file): old rows never mix in.
    first = CSVLogger(tmp_path, version=0)
    first.log_metrics({"loss": 1.0, "old_metric": 3.0}, step=0)
    first.finalize("success")
    second = CSVLogger(tmp_path, version=0)
    with pytest.warns(UserWarning, match=r"log folder .*version_0' exists and is not empty .*replaced"):
        second.log_metrics({"loss": 0.5}, step=1)
    second.save()
    second.log_metrics({"loss": 0.4, "lr": 0.01}, step=2)
    second.save()
    header, rows = read_csv(second.metrics_file_path)
    assert header == ["loss", "lr", "step"]
    assert [row["loss"] for row in rows] == ["0.5", "0.4"]


def test_logging_after_finalize_still_reaches_the_file(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"a": 1})
    logger.finalize("success")
    logger.log_metrics({"a": 2})
    logger.finalize("success")
    assert steps_of(logger.metrics_file_path) == [0, 1]


def test_buffered_rows_are_written_when_the_logger_is_collected(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    logger.log_metrics({"a": 1})
    path = logger.metrics_file_path
    del logger
    gc.collect()
    assert read_csv(path)[1] == [{"step": "0", "a": "1"}]


def test_a_pickled_copy_does_not_write_the_rows_buffered_here_twice(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, version=0)
    logger.log_metrics({"a": 1})
    copy = pickle.loads(pickle.dumps(logger))  # as ddp_spawn sends it to a worker process
    copy.log_metrics({"a": 2})
    copy.save()
    logger.save()
    assert steps_of(logger.metrics_file_path) == [1, 0]


def test_rows_go_to_the_folder_of_the_first_log_call_even_after_a_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    logger = CSVLogger("logs")
    logger.log_metrics({"x": 1})
    monkeypatch.chdir(tmp_path / "b")
    logger.log_metrics({"x": 2})
    logger.save()
    assert steps_of(tmp_path / "a" / "logs" / "lightning_logs" / "version_0" / "metrics.csv") == [0, 1]
    assert list((tmp_path / "b").iterdir()) == []


def test_repr(tmp_path: Path) -> None:
    logger = CSVLogger("logs", name="exp", version=2)
    assert repr(logger) == "CSVLogger(root_dir='logs', name='exp', version=2)"


# -- ranks ----------------------------------------------------------------------------------------


def test_other_ranks_write_nothing(tmp_path: Path) -> None:
    rank_zero_only.rank = 1  # type: ignore[attr-defined]  # restored by conftest
    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=1)
    logger.log_hyperparams({"lr": 0.1})
    for step in range(3):
        logger.log_metrics({"loss": 1.0}, step=step)
    logger.save()
    logger.finalize("success")
    del logger
    gc.collect()
    assert list(tmp_path.iterdir()) == []


# -- hyperparameters ------------------------------------------------------------------------------


def test_hyperparameters_go_to_hparams_yaml(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    logger = CSVLogger(tmp_path, name="exp")
    logger.log_hyperparams(
        {
            "lr": 0.001,
            "layers": [64, 32],
            "name": "run: #1",
            "flag": True,
            "nothing": None,
            "device": torch.device("cpu"),
            "scale": torch.tensor(2.5),
            "nan": float("nan"),
            "optimizer": {"name": "adam", "betas": (0.9, 0.99)},
        }
    )
    logger.log_hyperparams(Namespace(batch_size=32, lr=0.01))  # adds to, and overrides, what was there
    logger.log_hyperparams(None)
    path = tmp_path / "exp" / "version_0" / "hparams.yaml"
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert math.isnan(loaded.pop("nan"))
    assert loaded == {
        "lr": 0.01,
        "layers": [64, 32],
        "name": "run: #1",
        "flag": True,
        "nothing": None,
        "device": "cpu",
        "scale": 2.5,
        "optimizer": {"name": "adam", "betas": [0.9, 0.99]},
        "batch_size": 32,
    }
    assert not (tmp_path / "exp" / "version_0" / "metrics.csv").exists()
    assert path.read_text(encoding="utf-8").splitlines()[0] == "lr: 0.01"


def test_hyperparameter_names_that_yaml_would_misread_are_quoted(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    logger = CSVLogger(tmp_path)
    params = {"yes": 1, "null": 2, "a b": 3, "1": 4, "x: y": 5, "#": 6, "plain_key": 7, "inf": float("-inf")}
    logger.log_hyperparams(params)
    loaded = yaml.safe_load(Path(logger.log_dir, "hparams.yaml").read_text(encoding="utf-8"))
    assert loaded == params


# -- through Fabric -------------------------------------------------------------------------------


def test_fabric_log_and_log_dict_reach_the_csv_at_teardown(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, name="run", flush_logs_every_n_steps=100)
    fabric = Fabric(accelerator="cpu", devices=1, loggers=[logger])
    assert fabric.logger is logger
    assert fabric.loggers == [logger]
    fabric.log("loss", torch.tensor(0.5), step=0)
    fabric.log_dict({"loss": 0.25, "acc": torch.tensor(0.75)}, step=1)
    fabric.log("loss", 0.125)
    assert not os.path.exists(logger.metrics_file_path)  # still buffered
    fabric._teardown()
    header, rows = read_csv(logger.metrics_file_path)
    assert header == ["acc", "loss", "step"]
    assert rows == [
        {"step": "0", "loss": "0.5", "acc": ""},
        {"step": "1", "loss": "0.25", "acc": "0.75"},
        {"step": "2", "loss": "0.125", "acc": ""},
    ]


def test_fabric_log_dict_refuses_a_tensor_of_several_elements(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu", devices=1, loggers=[CSVLogger(tmp_path)])
    with pytest.raises(ValueError, match="single-element"):
        fabric.log_dict({"weights": torch.zeros(4)})
    fabric._teardown()
    assert list(tmp_path.iterdir()) == []


def test_rows_are_flushed_when_launch_returns(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=100)
    fabric = Fabric(accelerator="cpu", devices=1, loggers=logger)

    def train(fabric: Fabric) -> str:
        for step in range(5):
            fabric.log("loss", 1.0 / (step + 1), step=step)
        return "done"

    assert fabric.launch(train) == "done"
    assert steps_of(logger.metrics_file_path) == [0, 1, 2, 3, 4]


def test_csv_is_selectable_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fabric = Fabric(accelerator="cpu", devices=1, loggers=["csv"])
    assert isinstance(fabric.logger, CSVLogger)
    fabric.log("loss", 1.0)
    fabric._teardown()
    assert steps_of(tmp_path / "logs" / "lightning_logs" / "version_0" / "metrics.csv") == [0]


def test_two_loggers_both_receive_every_metric(tmp_path: Path) -> None:
    first, second = CSVLogger(tmp_path, name="a"), CSVLogger(tmp_path, name="b", prefix="p")
    fabric = Fabric(accelerator="cpu", devices=1, loggers=[first, second])
    fabric.log("x", 1)
    fabric._teardown()
    assert read_csv(first.metrics_file_path) == (["step", "x"], [{"step": "0", "x": "1"}])
    assert read_csv(second.metrics_file_path) == (["p-x", "step"], [{"step": "0", "p-x": "1"}])


class RecordingLogger(Logger):
    """A minimal custom logger, as docs/loggers.md shows."""

    def __init__(self) -> None:
        self.metrics: list[tuple[dict[str, Any], int | None]] = []
        self.statuses: list[str] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.metrics.append((dict(metrics), step))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def finalize(self, status: str) -> None:
        self.statuses.append(status)


def test_a_custom_logger_gets_metrics_and_the_final_status() -> None:
    logger = RecordingLogger()
    fabric = Fabric(accelerator="cpu", devices=1, loggers=[logger])
    # Registered as a plugin: the Logger base class implements fabric_log and fabric_on_teardown.
    hooks = fabric.plugin_manager.hook
    assert logger in [impl.plugin for impl in hooks.fabric_log.get_hookimpls()]
    assert logger in [impl.plugin for impl in hooks.fabric_on_teardown.get_hookimpls()]
    fabric.launch(lambda fabric: fabric.log_dict({"a": torch.tensor(1.5)}, step=3))
    assert logger.metrics == [({"a": 1.5}, 3)]
    assert logger.statuses == ["success"]


def test_a_failing_run_finalizes_with_failed() -> None:
    logger = RecordingLogger()
    fabric = Fabric(accelerator="cpu", devices=1, loggers=[logger])

    def train(fabric: Fabric) -> None:
        raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        fabric.launch(train)
    assert logger.statuses == ["failed"]
    fabric._teardown()  # once only
    assert logger.statuses == ["failed"]


def _run_script(tmp_path: Path, source: str) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


def test_a_script_that_exits_without_teardown_keeps_its_rows(tmp_path: Path) -> None:
    # Fewer rows than flush_logs_every_n_steps, no launch(fn), no explicit teardown: Fabric's
    # atexit teardown (and the logger's own finalizer) must still write them.
    _run_script(
        tmp_path,
        """
        from fabric_core import Fabric
        from fabric_core.loggers import CSVLogger, Logger


        class StatusLogger(Logger):
            name = "status"
            version = 0

            def log_metrics(self, metrics, step=None):
                pass

            def log_hyperparams(self, params, *args, **kwargs):
                pass

            def finalize(self, status):
                with open("status.txt", "a") as file:
                    print(status, file=file)


        loggers = [CSVLogger("out", name="global"), StatusLogger()]
        fabric = Fabric(accelerator="cpu", devices=1, loggers=loggers)
        fabric.launch()
        for step in range(3):
            fabric.log("loss", 1.0 / (step + 1))


        def main():
            # A Fabric that is gone before the interpreter exits, and a logger used alone.
            local = Fabric(accelerator="cpu", devices=1, loggers=[CSVLogger("out", name="local")])
            local.log_dict({"a": 1, "b": 2})
            alone = CSVLogger("out", name="alone")
            alone.log_metrics({"c": 3}, step=9)


        main()
        """,
    )
    assert (tmp_path / "status.txt").read_text() == "success\n"  # Fabric's teardown ran, once
    out = tmp_path / "out"
    assert steps_of(out / "global" / "version_0" / "metrics.csv") == [0, 1, 2]
    assert read_csv(out / "local" / "version_0" / "metrics.csv")[1] == [{"step": "0", "a": "1", "b": "2"}]
    assert read_csv(out / "alone" / "version_0" / "metrics.csv")[1] == [{"step": "9", "c": "3"}]


# -- the add-on of docs/loggers.md ----------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "loggers.md"


def _docs_files() -> dict[str, str]:
    blocks = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    return dict(blocks)


def test_the_documented_logger_addon_is_selectable_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_discovery: None
) -> None:
    """The fabric-jsonl add-on, written out from the docs' file blocks, registers "jsonl" through
    fabric_register_loggers in its entry-point module, and Fabric(loggers=[..., "jsonl"]) builds it."""
    from fabric_core._lookup import lookup
    from tests._fake_dist import FakeSite

    files = _docs_files()
    assert 'jsonl = "fabric_jsonl"' in files["fabric-jsonl/pyproject.toml"]
    for variable in ("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "FABRIC_PLUGINS", "FABRIC_BLOCK_PLUGINS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    with FakeSite(tmp_path / "site", monkeypatch) as site:
        site.add(
            "fabric-jsonl",
            modules={
                "fabric_jsonl.__init__": files["fabric-jsonl/fabric_jsonl/__init__.py"],
                "fabric_jsonl.logger": files["fabric-jsonl/fabric_jsonl/logger.py"],
            },
            entry_points={"jsonl": "fabric_jsonl"},
        )
        entry = lookup("logger", "jsonl")
        assert (entry.distribution, entry.factory) == ("fabric-jsonl", "fabric_jsonl.logger:JSONLinesLogger")
        assert "fabric_jsonl.logger" not in sys.modules  # imported only when selected
        fabric = Fabric(accelerator="cpu", devices=1, loggers=["csv", "jsonl"])
        csv_logger, jsonl_logger = fabric.loggers
        assert type(jsonl_logger).__name__ == "JSONLinesLogger"
        jsonl_logger.log_hyperparams(Namespace(lr=0.1))
        fabric.launch(lambda fabric: fabric.log_dict({"loss": torch.tensor(0.5)}, step=3))
    lines = (tmp_path / "logs" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"hparams": {"lr": 0.1}},
        {"step": 3, "loss": 0.5},
        {"status": "success"},
    ]
    assert isinstance(csv_logger, CSVLogger)
    assert read_csv(csv_logger.metrics_file_path)[1] == [{"step": "3", "loss": "0.5"}]
