"""WandbLogger in one process: what it logs, read back from the run's own transaction log."""

from __future__ import annotations

import enum
import pickle
from argparse import Namespace
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fabric_core import Fabric
from fabric_core.testing import LoggerConformance
from fabric_core.utilities.rank_zero import rank_zero_only

from fabric_wandb import WandbLogger
from fabric_wandb.logger import WandbLogger as LoggerClass

Runs = Callable[[str | Path], Any]
Folders = Callable[[str | Path], list[Path]]


class TestConformance(LoggerConformance):
    """fabric-core's conformance checks for metric loggers."""

    @pytest.fixture(autouse=True)
    def _reader(self, run_file: Runs) -> None:
        self.run_file = run_file

    def make_logger(self, tmp_path: Path) -> WandbLogger:
        return WandbLogger(save_dir=tmp_path, offline=True)

    def read_metrics(self, logger: Any) -> list[tuple[int, Mapping[str, float]]]:
        by_step: dict[int, dict[str, float]] = {}
        for row in self.run_file(logger.log_dir).history():
            step = row.pop("trainer/global_step")
            by_step.setdefault(step, {}).update(row)
        return sorted(by_step.items())


def test_package_attribute_is_the_logger_class() -> None:
    assert WandbLogger is LoggerClass


def test_training_with_fabric_logs_the_exact_metrics_and_steps(
    tmp_path: Path, run_file: Runs, run_folders: Folders
) -> None:
    logger = WandbLogger(name="regression", project="fabric-tests", save_dir=tmp_path / "out", offline=True)
    fabric = Fabric(accelerator="cpu", loggers=logger)
    logged: list[tuple[int, float, float]] = []

    def train(fabric: Fabric) -> None:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model, optimizer = fabric.setup(model, optimizer)
        fabric.logger.log_hyperparams({"lr": 0.1, "optimizer": {"name": "sgd", "momentum": 0.0}})
        for step in range(6):
            inputs = torch.randn(8, 4)
            loss = torch.nn.functional.mse_loss(model(inputs), inputs.sum(dim=1, keepdim=True))
            fabric.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            lr = 0.1 / (step + 1)
            fabric.log("train/loss", loss, step=step * 10)  # a one-element tensor
            fabric.log_dict({"lr": lr, "epoch": step // 3}, step=step * 10)
            logged.append((step * 10, loss.item(), lr))

    fabric.launch(train)  # teardown finalizes: the run is finished when launch returns

    (folder,) = run_folders(tmp_path / "out")
    assert logger.log_dir == str(folder) and folder.name.startswith("offline-run-")
    assert folder.name.endswith(logger.version)
    run = run_file(folder)
    assert run.metric("train/loss") == [(step, loss) for step, loss, _ in logged]
    assert run.metric("lr") == [(step, lr) for step, _, lr in logged]
    assert run.metric("epoch") == [(0, 0), (10, 0), (20, 0), (30, 1), (40, 1), (50, 1)]
    assert run.config() == {"lr": 0.1, "optimizer": {"name": "sgd", "momentum": 0.0}}
    started = run.run()
    assert (started.project, started.display_name, started.run_id) == ("fabric-tests", "regression", logger.version)
    assert run.exit_code() == 0
    # Every metric is plotted against the step metric, which may go back or repeat.
    metrics = {metric.glob_name or metric.name: metric.step_metric for metric in run.of_type("metric")}
    assert metrics == {"trainer/global_step": "", "*": "trainer/global_step"}


def test_without_a_step_the_row_keeps_the_last_step(tmp_path: Path, run_file: Runs) -> None:
    logger = WandbLogger(save_dir=tmp_path)
    logger.log_metrics({"x": 1.0}, step=5)
    logger.log_metrics({"x": 2.0})
    logger.log_metrics({"x": 3.0}, step=2)  # a step may go back
    logger.finalize("success")
    assert run_file(logger.log_dir).metric("x") == [(5, 1.0), (5, 2.0), (2, 3.0)]


def test_prefix_is_joined_with_a_dash(tmp_path: Path, run_file: Runs) -> None:
    logger = WandbLogger(save_dir=tmp_path, prefix="train")
    logger.log_metrics({"loss": 1.5}, step=3)
    logger.finalize("success")
    assert run_file(logger.log_dir).history() == [{"train-loss": 1.5, "trainer/global_step": 3}]


def test_numbers_of_every_kind_are_logged_as_numbers(tmp_path: Path, run_file: Runs) -> None:
    logger = WandbLogger(save_dir=tmp_path)
    logger.log_metrics(
        {"int": 7, "bool": True, "numpy": np.float64(0.5), "tensor": torch.tensor(2.5), "nested": {"a": 1.0, "b": 2}},
        step=1,
    )
    logger.finalize("success")
    assert run_file(logger.log_dir).history() == [
        {"int": 7, "bool": True, "numpy": 0.5, "tensor": 2.5, "nested": {"a": 1.0, "b": 2}, "trainer/global_step": 1}
    ]


# -- hyperparameters ---------------------------------------------------------------------------


@dataclass
class OptimizerConfig:
    name: str = "adamw"
    betas: tuple[float, float] = (0.9, 0.999)


class Kind(enum.Enum):
    COSINE = "cosine"


def test_hyperparameters_are_in_the_run_config(tmp_path: Path, run_file: Runs) -> None:
    logger = WandbLogger(save_dir=tmp_path)
    logger.log_hyperparams(
        {
            "lr": 0.001,
            "layers": 3,
            "amp": False,
            "optimizer": OptimizerConfig(),
            "schedule": {"warmup": 100, "kind": Kind.COSINE},
            "data": Namespace(path=Path("/data"), workers=4),
            "dropout": torch.tensor(0.25),
            "weights": torch.tensor([1.0, 2.0]),
            "seed": np.int64(7),
            "missing": None,
            "sizes": (64, 32),
            "activation": torch.nn.ReLU,
            "init": torch.nn.init.zeros_,
            "device": torch.device("cpu"),
        }
    )
    logger.log_hyperparams(Namespace(lr=0.002))  # a later value replaces the earlier one
    logger.finalize("success")
    assert run_file(logger.log_dir).config() == {
        "lr": 0.002,
        "layers": 3,
        "amp": False,
        "optimizer": {"name": "adamw", "betas": [0.9, 0.999]},
        "schedule": {"warmup": 100, "kind": "cosine"},
        "data": {"path": "/data", "workers": 4},
        "dropout": 0.25,
        "weights": [1.0, 2.0],
        "seed": 7,
        "missing": None,
        "sizes": [64, 32],
        "activation": "ReLU",
        "init": "zeros_",
        "device": "cpu",
    }


def test_wandb_init_arguments_are_passed_on(tmp_path: Path, run_file: Runs) -> None:
    logger = WandbLogger(
        save_dir=tmp_path, id="fixed-id", tags=["baseline", "cpu"], group="ablation", notes="n", config={"seed": 3}
    )
    assert logger.version == "fixed-id"  # known before the run starts
    logger.log_metrics({"x": 1}, step=0)
    logger.finalize("success")
    run = run_file(logger.log_dir)
    assert run.run().run_id == "fixed-id" and logger.log_dir.endswith("-fixed-id")
    assert (list(run.run().tags), run.run().run_group, run.run().notes) == (["baseline", "cpu"], "ablation", "n")
    assert run.config() == {"seed": 3}


# -- the run's lifetime ------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [("success", 0), ("finished", 0), ("failed", 1), ("interrupted", 1)])
def test_finalize_finishes_the_run_with_the_status_as_exit_code(
    tmp_path: Path, run_file: Runs, status: str, code: int
) -> None:
    logger = WandbLogger(save_dir=tmp_path)
    logger.log_metrics({"x": 1.0}, step=0)
    logger.finalize(status)
    assert run_file(logger.log_dir).exit_code() == code


def test_nothing_is_started_before_the_first_write_and_finalize_is_once(tmp_path: Path, run_file: Runs) -> None:
    import wandb

    logger = WandbLogger(save_dir=tmp_path / "out")
    assert (logger.version, logger.log_dir, logger.name) == (None, None, "lightning_logs")
    assert logger.save_dir == logger.root_dir == str(tmp_path / "out")
    logger.save()
    logger.finalize("success")  # no run: nothing to do
    assert not (tmp_path / "out").exists() and wandb.run is None
    logger.log_metrics({"x": 1.0}, step=0)
    logger.finalize("failed")
    logger.finalize("success")  # a second finalize (teardown after the user's own) does nothing
    assert run_file(logger.log_dir).exit_code() == 1
    with pytest.raises(RuntimeError, match=r"the W&B run \w+ was finished .* a finished run takes no more data"):
        logger.log_metrics({"x": 2.0}, step=1)


def test_the_save_dir_defaults_to_wandb_dir_and_the_project_to_wandb_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    logger = WandbLogger()
    assert (logger.save_dir, logger.name) == (str(tmp_path), "from-env")
    assert WandbLogger(dir=tmp_path / "d").save_dir == str(tmp_path / "d")
    assert WandbLogger(project="given").name == "given"


def test_a_relative_save_dir_is_the_one_of_when_the_logger_was_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_folders: Folders
) -> None:
    monkeypatch.chdir(tmp_path)
    logger = WandbLogger(save_dir="runs")
    assert logger.save_dir == str(tmp_path / "runs")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    logger.log_metrics({"x": 1.0}, step=0)
    logger.finalize("success")
    assert run_folders(tmp_path / "runs") == [Path(logger.log_dir)]
    assert not (tmp_path / "elsewhere" / "runs").exists()


def test_a_run_given_as_experiment_is_logged_into_and_left_running(tmp_path: Path, run_file: Runs) -> None:
    import wandb

    run = wandb.init(dir=tmp_path, project="mine")
    logger = WandbLogger(experiment=run)
    assert logger.version == run.id
    Fabric(accelerator="cpu", loggers=logger).log("x", 1.5, step=4)
    logger.finalize("success")
    assert wandb.run is run  # still running: it is the user's
    run.finish()
    assert run_file(logger.log_dir).metric("x") == [(4, 1.5)]


def test_a_run_in_progress_is_reused_with_a_warning(tmp_path: Path, run_file: Runs) -> None:
    import wandb

    run = wandb.init(dir=tmp_path, project="mine")
    logger = WandbLogger(save_dir=tmp_path)
    with pytest.warns(UserWarning, match=rf"logs into the W&B run already in progress in this process \({run.id}\)"):
        logger.log_metrics({"x": 1.0}, step=0)
    logger.finalize("success")
    assert wandb.run is run
    run.finish()
    assert run_file(run.settings.sync_dir).metric("x") == [(0, 1.0)]


def test_a_pickled_copy_starts_its_own_run(tmp_path: Path) -> None:
    # ddp_spawn sends loggers to the new processes by pickling them.
    logger = WandbLogger(save_dir=tmp_path)
    copy = pickle.loads(pickle.dumps(logger))
    assert copy.save_dir == logger.save_dir and copy.log_dir is None
    logger.log_metrics({"x": 1.0}, step=0)
    with pytest.warns(UserWarning, match=r"sent to another process \(ddp_spawn\), where it starts a W&B run"):
        pickle.dumps(logger)
    logger.finalize("success")


def test_ranks_other_than_zero_start_no_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = WandbLogger(save_dir=tmp_path / "out")
    fabric = Fabric(accelerator="cpu", loggers=logger)
    fabric.log("x", 1.0, step=0)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_table("t", columns=["a"], data=[[1]])
    experiment = logger.experiment
    assert type(experiment).__name__ == "NoRun"
    assert experiment.log({"x": 1}) is None and experiment.config.update({"a": 1}) is None
    experiment.summary["best"] = 1.0
    logger.finalize("success")
    assert wandb.run is None and not (tmp_path / "out").exists()
    assert logger.version is None and logger.log_dir is None


# -- media -------------------------------------------------------------------------------------


def test_tables_and_text_are_written_as_w_and_b_tables(tmp_path: Path, run_file: Runs) -> None:
    import json

    logger = WandbLogger(save_dir=tmp_path)
    logger.log_table("samples", columns=["input", "score"], data=[["a", 0.5], ["b", 0.25]], step=3)
    logger.log_text("notes", columns=["text"], data=[["first"], ["second"]], step=4)
    logger.finalize("success")
    run = run_file(logger.log_dir)
    tables = {}
    for key, step in (("samples", 3), ("notes", 4)):
        ((logged_step, value),) = run.metric(key)
        assert logged_step == step and value["_type"] == "table-file"
        tables[key] = json.loads(Path(logger.log_dir, "files", value["path"]).read_text())
    assert (tables["samples"]["columns"], tables["samples"]["data"]) == (["input", "score"], [["a", 0.5], ["b", 0.25]])
    assert (tables["notes"]["columns"], tables["notes"]["data"]) == (["text"], [["first"], ["second"]])


def test_images_are_written_with_their_captions(tmp_path: Path, run_file: Runs) -> None:
    from PIL import Image

    logger = WandbLogger(save_dir=tmp_path)
    red = np.zeros((6, 4, 3), dtype=np.uint8)
    red[:, :, 0] = 255
    white = np.full((6, 4, 3), 255, dtype=np.uint8)  # (a tensor needs torchvision on wandb 0.17)
    logger.log_image("samples", [red, white], step=2, caption=["red", "white"])
    logger.finalize("success")
    ((step, value),) = run_file(logger.log_dir).metric("samples")
    assert (step, value["_type"], value["captions"], value["count"]) == (2, "images/separated", ["red", "white"], 2)
    colours = []
    for name in value["filenames"]:
        with Image.open(Path(logger.log_dir, "files", name)) as image:
            assert image.size == (4, 6)
            colours.append(image.convert("RGB").getpixel((0, 0)))
    assert colours == [(255, 0, 0), (255, 255, 255)]


def test_image_arguments_are_checked_by_name(tmp_path: Path) -> None:
    logger = WandbLogger(save_dir=tmp_path)
    with pytest.raises(TypeError, match=r"log_image\('x', images=...\): expected a list, got ndarray"):
        logger.log_image("x", np.zeros((2, 2)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"log_image\('x', caption=...\): expected a list of 2 entries, one per image"):
        logger.log_image("x", [np.zeros((2, 2)), np.zeros((2, 2))], caption=["only one"])
    logger.finalize("success")
