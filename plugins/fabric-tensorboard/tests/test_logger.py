"""TensorBoardLogger in one process: what it writes, read back with TensorBoard's own reader."""

from __future__ import annotations

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

from fabric_tensorboard import TensorBoardLogger
from fabric_tensorboard.logger import TensorBoardLogger as LoggerClass

Events = Callable[[str | Path], Any]
AsStored = Callable[[float], float]


class TestConformance(LoggerConformance):
    """fabric-core's conformance checks for metric loggers."""

    def make_logger(self, tmp_path: Path) -> TensorBoardLogger:
        return TensorBoardLogger(tmp_path)

    def read_metrics(self, logger: Any) -> list[tuple[int, Mapping[str, float]]]:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        accumulator = EventAccumulator(logger.log_dir)
        accumulator.Reload()
        by_step: dict[int, dict[str, float]] = {}
        for tag in accumulator.Tags()["scalars"]:
            for event in accumulator.Scalars(tag):
                by_step.setdefault(event.step, {})[tag] = event.value
        return sorted(by_step.items())


def test_package_attribute_is_the_logger_class() -> None:
    assert TensorBoardLogger is LoggerClass


def test_training_with_fabric_writes_the_exact_scalars_and_steps(
    tmp_path: Path, events: Events, as_stored: AsStored
) -> None:
    logger = TensorBoardLogger(tmp_path, name="regression")
    fabric = Fabric(accelerator="cpu", loggers=[logger])
    logged: list[tuple[int, float, float]] = []

    def train(fabric: Fabric) -> None:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model, optimizer = fabric.setup(model, optimizer)
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

    fabric.launch(train)  # teardown finalizes: everything is on disk when launch returns

    assert logger.log_dir == str(tmp_path / "regression" / "version_0")
    run = events(logger.log_dir)
    assert run.scalar_tags() == ["epoch", "lr", "train/loss"]
    assert run.scalars("train/loss") == [(step, as_stored(loss)) for step, loss, _ in logged]
    assert run.scalars("lr") == [(step, as_stored(lr)) for step, _, lr in logged]
    assert run.scalars("epoch") == [(0, 0.0), (10, 0.0), (20, 0.0), (30, 1.0), (40, 1.0), (50, 1.0)]


def test_without_a_step_the_step_counts_the_calls(tmp_path: Path, events: Events) -> None:
    logger = TensorBoardLogger(tmp_path)
    for value in (3.0, 2.0, 1.0):
        logger.log_metrics({"x": value})
    logger.log_metrics({"x": 0.5}, step=100)
    logger.log_metrics({"x": 0.25})
    logger.finalize("success")
    assert events(logger.log_dir).scalars("x") == [(0, 3.0), (1, 2.0), (2, 1.0), (100, 0.5), (4, 0.25)]


def test_prefix_is_joined_with_a_dash(tmp_path: Path, events: Events) -> None:
    logger = TensorBoardLogger(tmp_path, prefix="train")
    logger.log_metrics({"loss": 1.5}, step=3)
    logger.finalize("success")
    assert events(logger.log_dir).scalars("train-loss") == [(3, 1.5)]


def test_numbers_of_every_kind_become_scalars(tmp_path: Path, events: Events) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_metrics(
        {
            "int": 7,
            "bool": True,
            "numpy": np.float64(0.5),
            "numpy_int": np.int64(4),
            "tensor": torch.tensor([2.5]),
            "bf16": torch.tensor(1.5, dtype=torch.bfloat16),
        },
        step=1,
    )
    logger.finalize("success")
    run = events(logger.log_dir)
    stored = {tag: run.scalars(tag) for tag in run.scalar_tags()}
    assert stored == {
        "bf16": [(1, 1.5)],
        "bool": [(1, 1.0)],
        "int": [(1, 7.0)],
        "numpy": [(1, 0.5)],
        "numpy_int": [(1, 4.0)],
        "tensor": [(1, 2.5)],
    }


def test_a_dict_value_is_one_chart_with_a_line_per_key(tmp_path: Path, events: Events) -> None:
    logger = TensorBoardLogger(tmp_path)
    fabric = Fabric(accelerator="cpu", loggers=[logger])
    fabric.log_dict({"loss": {"train": torch.tensor(0.5), "val": 0.75}}, step=2)
    fabric.log_dict({"loss": {"train": 0.25, "val": 0.5}}, step=3)
    logger.finalize("success")
    # SummaryWriter.add_scalars: one run folder per line, each with the chart's tag.
    assert events(Path(logger.log_dir, "loss_train")).scalars("loss") == [(2, 0.5), (3, 0.25)]
    assert events(Path(logger.log_dir, "loss_val")).scalars("loss") == [(2, 0.75), (3, 0.5)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("fast", r"metric 'speed': its value 'fast' is a str, and TensorBoard plots numbers. Log a number"),
        (torch.ones(3), r"metric 'speed': it is a tensor of 3 elements \(shape \(3,\)\).*Reduce it first"),
        ({"a": None}, r"metric 'speed/a': its value None is a NoneType"),
    ],
)
def test_values_that_are_not_numbers_are_refused_by_name(tmp_path: Path, value: Any, message: str) -> None:
    logger = TensorBoardLogger(tmp_path)
    with pytest.raises(ValueError, match=message):
        logger.log_metrics({"speed": value}, step=0)
    logger.finalize("success")


# -- hyperparameters ---------------------------------------------------------------------------


@dataclass
class OptimizerConfig:
    name: str = "adamw"
    betas: tuple[float, float] = (0.9, 0.999)


def test_hyperparameters_are_readable_by_the_hparams_plugin(tmp_path: Path, events: Events) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_hyperparams(
        {
            "lr": 0.001,
            "layers": 3,
            "amp": False,
            "optimizer": OptimizerConfig(),
            "schedule": {"warmup": 100, "kind": "cosine"},
            "data": Namespace(path="/data", workers=4),
            "dropout": torch.tensor(0.25),
            "seed": np.int64(7),
            "missing": None,
            "sizes": [64, 32],
        }
    )
    logger.finalize("success")
    run = events(logger.log_dir)
    assert run.hparam_values() == {
        "lr": 0.001,
        "layers": 3.0,
        "amp": False,
        "optimizer/name": "adamw",
        "optimizer/betas": "(0.9, 0.999)",
        "schedule/warmup": 100.0,
        "schedule/kind": "cosine",
        "data/path": "/data",
        "data/workers": 4.0,
        "dropout": 0.25,
        "seed": 7.0,
        "missing": "None",
        "sizes": "[64, 32]",
    }
    experiment = run.hparams()["experiment"]
    assert [info.name.tag for info in experiment.metric_infos] == ["hp_metric"]
    assert {info.name for info in experiment.hparam_infos} == set(run.hparam_values())
    # default_hp_metric: a placeholder hp_metric of -1 at step 0, so the HPARAMS tab has a metric column.
    assert run.scalars("hp_metric") == [(0, -1.0)]
    assert run.status() == "STATUS_SUCCESS"


def test_hyperparameters_from_a_namespace_with_metrics(tmp_path: Path, events: Events) -> None:
    logger = TensorBoardLogger(tmp_path, prefix="tune")
    logger.log_hyperparams(Namespace(lr=0.5, batch_size=32), {"val/acc": torch.tensor(0.75), "val/loss": 0.5})
    logger.log_metrics({"val/acc": 0.875}, step=10)
    logger.finalize("success")
    run = events(logger.log_dir)
    assert run.hparam_values() == {"lr": 0.5, "batch_size": 32.0}
    # The metric columns name the prefixed tags that the values were logged under.
    assert [info.name.tag for info in run.hparams()["experiment"].metric_infos] == ["tune-val/acc", "tune-val/loss"]
    assert run.scalars("tune-val/acc") == [(0, 0.75), (10, 0.875)]
    assert run.scalars("tune-val/loss") == [(0, 0.5)]
    assert "tune-hp_metric" not in run.scalar_tags()


def test_one_value_is_the_hp_metric(tmp_path: Path, events: Events) -> None:
    logger = TensorBoardLogger(tmp_path, default_hp_metric=False)
    logger.log_hyperparams({"lr": 0.1}, torch.tensor(0.5))
    logger.finalize("success")
    run = events(logger.log_dir)
    assert run.hparam_values() == {"lr": 0.1}
    assert run.scalars("hp_metric") == [(0, 0.5)]  # no -1 placeholder with default_hp_metric=False


def test_a_second_call_warns_that_tensorboard_shows_only_the_first(tmp_path: Path, events: Events) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_hyperparams({"lr": 0.1})
    with pytest.warns(UserWarning, match=r"called again .* shows only the first hyperparameters .*\['momentum'\]"):
        logger.log_hyperparams({"momentum": 0.9}, {"hp_metric": 0.75})
    logger.log_metrics({"hp_metric": 0.875}, step=5)
    logger.finalize("success")
    run = events(logger.log_dir)
    assert run.hparam_values() == {"lr": 0.1}  # TensorBoard's reader keeps the first record of a run
    # The metrics of the second call are scalars all the same; the HPARAMS tab shows the latest value.
    assert run.scalars("hp_metric") == [(0, -1.0), (0, 0.75), (5, 0.875)]


def test_hyperparameters_without_metrics_are_still_written(tmp_path: Path, events: Events) -> None:
    # Lightning drops them when there is no metric and default_hp_metric is off; here they are kept.
    logger = TensorBoardLogger(tmp_path, default_hp_metric=False)
    logger.log_hyperparams({"lr": 0.1})
    logger.finalize("success")
    run = events(logger.log_dir)
    assert run.hparam_values() == {"lr": 0.1}
    assert run.scalar_tags() == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("success", "STATUS_SUCCESS"),
        ("failed", "STATUS_FAILURE"),
        ("finished", "STATUS_SUCCESS"),
        ("odd", "STATUS_UNKNOWN"),
    ],
)
def test_finalize_records_the_run_status_for_the_hparams_plugin(
    tmp_path: Path, events: Events, status: str, expected: str
) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_hyperparams({"lr": 0.1})
    logger.finalize(status)
    assert events(logger.log_dir).status() == expected


# -- graphs ------------------------------------------------------------------------------------


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)
        self.example_input_array = torch.randn(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.layer(x))


def test_log_graph_uses_the_example_input_array_of_a_fabric_module(tmp_path: Path, events: Events) -> None:
    logger = TensorBoardLogger(tmp_path)
    fabric = Fabric(accelerator="cpu", loggers=[logger])
    model = fabric.setup(TinyNet())
    fabric.logger.log_graph(model)
    logger.finalize("success")
    run = events(logger.log_dir)
    assert run.has_graph()
    operations = {node.op for node in run.accumulator.Graph().node}
    assert any("linear" in op for op in operations) and any("relu" in op for op in operations), operations


def test_log_graph_with_an_input_array(tmp_path: Path, events: Events) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.log_graph(torch.nn.Sequential(torch.nn.Linear(5, 1)), torch.randn(2, 5))
    logger.finalize("success")
    assert events(logger.log_dir).has_graph()


def test_log_graph_without_an_input_warns_and_writes_nothing(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path)
    with pytest.warns(UserWarning, match=r"log_graph\(Linear\) wrote no graph: it needs an input.*example_input_array"):
        logger.log_graph(torch.nn.Linear(2, 2))
    with pytest.warns(UserWarning, match=r"the input is a dict, which TensorBoard cannot trace"):
        logger.log_graph(torch.nn.Linear(2, 2), {"x": torch.randn(1, 2)})
    logger.finalize("success")
    assert not (tmp_path / "lightning_logs").exists()


# -- folders and versions ----------------------------------------------------------------------


def test_versions_count_up_and_nothing_is_created_before_the_first_write(tmp_path: Path) -> None:
    first = TensorBoardLogger(tmp_path, name="exp")
    assert first.version == 0 and not (tmp_path / "exp").exists()
    first.log_metrics({"x": 1.0}, step=0)
    first.finalize("success")
    (tmp_path / "exp" / "version_7").mkdir()
    (tmp_path / "exp" / "version_notes").mkdir()  # not a version_N folder: ignored
    second = TensorBoardLogger(tmp_path, name="exp")
    assert second.version == 8
    assert second.log_dir == str(tmp_path / "exp" / "version_8")
    assert (second.root_dir, second.name) == (str(tmp_path), "exp")


def test_given_versions_names_and_sub_dir(tmp_path: Path, events: Events) -> None:
    assert TensorBoardLogger(tmp_path, version=3).log_dir == str(tmp_path / "lightning_logs" / "version_3")
    assert TensorBoardLogger(tmp_path, version="baseline").log_dir == str(tmp_path / "lightning_logs" / "baseline")
    assert TensorBoardLogger(tmp_path, name="", version=1).log_dir == str(tmp_path / "version_1")
    assert TensorBoardLogger(tmp_path, name=None).name == ""
    logger = TensorBoardLogger(tmp_path, name="exp", sub_dir=Path("train"))
    assert logger.sub_dir == "train"
    assert logger.log_dir == str(tmp_path / "exp" / "version_0" / "train")
    logger.log_metrics({"x": 2.0}, step=1)
    logger.finalize("success")
    assert events(tmp_path / "exp" / "version_0" / "train").scalars("x") == [(1, 2.0)]
    # The sub folder belongs to version_0, so the next logger takes version_1.
    assert TensorBoardLogger(tmp_path, name="exp").version == 1


def test_home_and_variables_in_the_path_are_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNS", str(tmp_path))
    assert TensorBoardLogger("$RUNS/tb", version=0).log_dir == str(tmp_path / "tb" / "lightning_logs" / "version_0")


def test_version_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError, match=r"TensorBoardLogger\(version=1.5\): expected an int, a folder name or None"):
        TensorBoardLogger("logs", version=1.5)  # type: ignore[arg-type]


def test_summary_writer_arguments_are_passed_on(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path, filename_suffix=".fabric", max_queue=3)
    assert type(logger.experiment).__name__ == "SummaryWriter"
    assert logger.experiment.max_queue == 3
    logger.log_metrics({"x": 1.0}, step=0)
    logger.finalize("success")
    (event_file,) = Path(logger.log_dir).iterdir()
    assert event_file.name.startswith("events.out.tfevents.") and event_file.name.endswith(".fabric")


def test_a_log_dir_for_the_writer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"got a SummaryWriter log_dir.*Pass root_dir=, name=, version= and sub_dir="):
        TensorBoardLogger(tmp_path, log_dir=str(tmp_path))


# -- lifetime ----------------------------------------------------------------------------------


def test_save_writes_queued_events_to_disk(tmp_path: Path, events: Events) -> None:
    # A queue and an interval that never flush by themselves: only save() puts the event on disk.
    logger = TensorBoardLogger(tmp_path, max_queue=10_000, flush_secs=10_000)
    logger.log_metrics({"x": 1.0}, step=0)
    logger.save()
    assert events(logger.log_dir).scalars("x") == [(0, 1.0)]
    logger.finalize("success")


def test_finalize_twice_and_logging_after_finalize(tmp_path: Path, events: Events) -> None:
    logger = TensorBoardLogger(tmp_path)
    logger.save()  # nothing written yet: no folder
    logger.finalize("success")
    assert not (tmp_path / "lightning_logs").exists()
    logger.log_metrics({"x": 1.0}, step=0)
    logger.finalize("success")
    logger.finalize("success")  # a second finalize (teardown after the user's own) does nothing
    logger.log_metrics({"x": 2.0}, step=1)  # the writer reopens, in a new event file
    logger.finalize("success")
    assert events(logger.log_dir).scalars("x") == [(0, 1.0), (1, 2.0)]


def test_a_pickled_copy_writes_with_its_own_writer(tmp_path: Path, events: Events) -> None:
    # ddp_spawn sends loggers to the new processes by pickling them.
    logger = TensorBoardLogger(tmp_path, version=0)
    logger.log_metrics({"x": 1.0}, step=0)
    copy = pickle.loads(pickle.dumps(logger))
    assert copy.log_dir == logger.log_dir
    copy.log_metrics({"x": 2.0}, step=1)
    copy.finalize("success")
    logger.finalize("success")
    assert sorted(events(logger.log_dir).scalars("x")) == [(0, 1.0), (1, 2.0)]


def test_ranks_other_than_zero_write_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = TensorBoardLogger(tmp_path)
    logger.log_metrics({"x": 1.0}, step=0)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_graph(TinyNet())
    logger.experiment.add_histogram("weights", torch.randn(10), 0)  # a stand-in: does nothing
    logger.save()
    logger.finalize("failed")
    assert list(tmp_path.iterdir()) == []


def test_repr_names_the_folder() -> None:
    assert repr(TensorBoardLogger("logs", name="exp", version=2)) == (
        "TensorBoardLogger(root_dir='logs', name='exp', version=2)"
    )
