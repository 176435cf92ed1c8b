"""MLFlowLogger in one process: what it logs, read back with MLflow's own MlflowClient."""

from __future__ import annotations

import pickle
import sys
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

from fabric_mlflow import MLFlowLogger
from fabric_mlflow.logger import MLFlowLogger as LoggerClass

OpenStore = Callable[[str | Path], Any]


class TestConformance(LoggerConformance):
    """fabric-core's conformance checks for metric loggers."""

    def make_logger(self, tmp_path: Path) -> MLFlowLogger:
        return MLFlowLogger(save_dir=tmp_path / "mlruns")

    def read_metrics(self, logger: Any) -> list[tuple[int, Mapping[str, float]]]:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=logger.tracking_uri)
        by_step: dict[int, dict[str, float]] = {}
        for key in client.get_run(logger.run_id).data.metrics:
            for metric in client.get_metric_history(logger.run_id, key):
                by_step.setdefault(metric.step, {})[key] = metric.value
        return sorted(by_step.items())


def test_package_attribute_is_the_logger_class() -> None:
    assert MLFlowLogger is LoggerClass


def test_training_with_fabric_logs_the_exact_metrics_steps_params_and_tags(save_dir: Path, store: OpenStore) -> None:
    tags = {"team": "vision", "seed": 0}
    logger = MLFlowLogger(experiment_name="regression", run_name="first", tags=tags, save_dir=save_dir)
    fabric = Fabric(accelerator="cpu", loggers=[logger])
    logged: list[tuple[int, float, float]] = []

    def train(fabric: Fabric) -> None:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model, optimizer = fabric.setup(model, optimizer)
        fabric.logger.log_hyperparams({"lr": 0.1, "optimizer": {"name": "sgd", "momentum": 0.0}, "layers": [4, 1]})
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

    fabric.launch(train)  # teardown finalizes the run

    runs = store(save_dir)
    run_id = logger.run_id
    assert [run.info.run_id for run in runs.runs("regression")] == [run_id]
    assert runs.metric_keys(run_id) == ["epoch", "lr", "train/loss"]
    # MLflow stores 64-bit floats: the values come back exactly as logged.
    assert runs.history(run_id, "train/loss") == [(step, loss) for step, loss, _ in logged]
    assert runs.history(run_id, "lr") == [(step, lr) for step, _, lr in logged]
    assert runs.history(run_id, "epoch") == [(0, 0.0), (10, 0.0), (20, 0.0), (30, 1.0), (40, 1.0), (50, 1.0)]
    params = {"lr": "0.1", "optimizer/name": "sgd", "optimizer/momentum": "0.0", "layers": "[4, 1]"}
    assert runs.params(run_id) == params
    assert runs.user_tags(run_id) == {"team": "vision", "seed": "0"}
    run = runs.run(run_id)
    assert run.info.run_name == "first"
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.source.name"]  # MLflow's own tags are added too
    assert logger.experiment_id == run.info.experiment_id == logger.name
    assert logger.version == run_id


def test_the_default_store_is_sqlite_in_save_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    logger = MLFlowLogger()
    database = tmp_path / "mlruns" / "mlflow.db"
    assert logger.tracking_uri == f"sqlite:///{database}"
    assert logger.save_dir == logger.root_dir == str(tmp_path / "mlruns")
    assert not (tmp_path / "mlruns").exists()  # nothing is made before the run is opened
    logger.log_metrics({"x": 1.0}, step=0)
    logger.finalize("success")
    assert database.is_file()
    artifact_uri = logger.experiment.get_run(logger.run_id).info.artifact_uri
    assert artifact_uri == (tmp_path / "mlruns" / "artifacts" / logger.run_id / "artifacts").as_uri()


def test_the_tracking_uri_argument_and_variable_take_precedence(
    tmp_path: Path, save_dir: Path, monkeypatch: pytest.MonkeyPatch, store: OpenStore
) -> None:
    elsewhere = f"sqlite:///{save_dir / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    from_variable = MLFlowLogger()
    assert from_variable.tracking_uri == elsewhere
    # A save_dir that is not used is named in a warning.
    message = rf"save_dir='.*unused'\) is not used: runs go to '{elsewhere}', from MLFLOW_TRACKING_URI. save_dir is"
    with pytest.warns(UserWarning, match=message):
        MLFlowLogger(save_dir=tmp_path / "unused")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    given = MLFlowLogger(tracking_uri=elsewhere)
    assert given.tracking_uri == elsewhere
    with pytest.warns(UserWarning, match=r"is not used: runs go to .*, from tracking_uri"):
        MLFlowLogger(tracking_uri=elsewhere, save_dir=tmp_path / "unused")
    from_variable.log_metrics({"x": 1.0}, step=0)
    from_variable.finalize("success")
    assert store(save_dir).history(from_variable.run_id, "x") == [(0, 1.0)]
    assert not (tmp_path / "unused").exists()


def test_without_a_step_the_step_counts_the_calls(save_dir: Path, store: OpenStore) -> None:
    logger = MLFlowLogger(save_dir=save_dir)
    for value in (3.0, 2.0, 1.0):
        logger.log_metrics({"x": value})
    logger.log_metrics({"x": 0.5}, step=100)
    logger.log_metrics({"x": 0.25})
    logger.finalize("success")
    assert store(save_dir).history(logger.run_id, "x") == [(0, 3.0), (1, 2.0), (2, 1.0), (100, 0.5), (4, 0.25)]


def test_prefix_and_dict_values(save_dir: Path, store: OpenStore) -> None:
    logger = MLFlowLogger(save_dir=save_dir, prefix="train")
    logger.log_metrics({"loss": 1.5, "acc": {"top1": 0.5, "top5": torch.tensor(0.75)}}, step=3)
    logger.finalize("success")
    runs = store(save_dir)
    assert runs.metric_keys(logger.run_id) == ["train-acc/top1", "train-acc/top5", "train-loss"]
    assert runs.history(logger.run_id, "train-acc/top5") == [(3, 0.75)]


def test_numbers_of_every_kind_become_metrics(save_dir: Path, store: OpenStore) -> None:
    logger = MLFlowLogger(save_dir=save_dir)
    values = {
        "int": 7,
        "bool": True,  # MLflow itself refuses booleans
        "numpy": np.float64(0.5),
        "numpy_int": np.int64(4),
        "tensor": torch.tensor([2.5]),
        "bf16": torch.tensor(1.5, dtype=torch.bfloat16),
    }
    logger.log_metrics(values, step=np.int64(1))  # type: ignore[arg-type]
    logger.finalize("success")
    runs = store(save_dir)
    stored = {key: runs.history(logger.run_id, key) for key in runs.metric_keys(logger.run_id)}
    expected = {"bf16": 1.5, "bool": 1.0, "int": 7.0, "numpy": 0.5, "numpy_int": 4.0, "tensor": 2.5}
    assert stored == {key: [(1, value)] for key, value in expected.items()}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("fast", r"metric 'speed': its value 'fast' is a str, and an MLflow metric is a number. .*set_tag"),
        (None, r"metric 'speed': its value None is a NoneType"),
        (torch.ones(3), r"metric 'speed': it is a tensor of 3 elements \(shape \(3,\)\).*Reduce it first"),
        ({"a": [1]}, r"metric 'speed/a': its value \[1\] is a list"),
    ],
)
def test_values_that_are_not_numbers_are_refused_before_anything_is_sent(
    save_dir: Path, store: OpenStore, value: Any, message: str
) -> None:
    logger = MLFlowLogger(save_dir=save_dir)
    with pytest.raises(ValueError, match=message):
        logger.log_metrics({"loss": 0.5, "speed": value}, step=0)
    logger.finalize("success")
    assert store(save_dir).metric_keys(logger.run_id) == []  # not even the good one: the call is refused whole


def test_a_step_that_is_not_an_integer_is_refused(save_dir: Path) -> None:
    logger = MLFlowLogger(save_dir=save_dir)
    with pytest.raises(TypeError, match=r"log_metrics\(step=1.5\): MLflow's step is an integer, got a float"):
        logger.log_metrics({"x": 1.0}, step=1.5)  # type: ignore[arg-type]


def test_characters_mlflow_refuses_are_removed_with_one_warning_per_name(save_dir: Path, store: OpenStore) -> None:
    logger = MLFlowLogger(save_dir=save_dir)
    with pytest.warns(RuntimeWarning, match=r"logs metric 'acc@1' as 'acc1': MLflow allows only") as record:
        logger.log_metrics({"acc@1": 0.5}, step=0)
        logger.log_metrics({"acc@1": 0.75}, step=1)
    assert len([warning for warning in record if "acc@1" in str(warning.message)]) == 1
    with pytest.raises(ValueError, match=r"cannot log metric 'a//b'.*Name it like 'train/loss'"):
        logger.log_metrics({"a//b": 1.0}, step=0)
    with pytest.raises(ValueError, match=r"cannot log metric '@@'"):
        logger.log_metrics({"@@": 1.0}, step=0)
    logger.finalize("success")
    assert store(save_dir).history(logger.run_id, "acc1") == [(0, 0.5), (1, 0.75)]


def test_nan_and_infinity_are_logged_as_mlflow_stores_them(save_dir: Path, store: OpenStore) -> None:
    logger = MLFlowLogger(save_dir=save_dir)
    logger.log_metrics({"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}, step=0)
    logger.finalize("success")
    runs = store(save_dir)
    assert np.isnan(runs.history(logger.run_id, "nan")[0][1])
    # MLflow's database stores infinities as the largest finite floats.
    assert runs.history(logger.run_id, "inf") == [(0, sys.float_info.max)]
    assert runs.history(logger.run_id, "-inf") == [(0, -sys.float_info.max)]


# -- parameters --------------------------------------------------------------------------------


@dataclass
class OptimizerConfig:
    name: str = "adamw"
    betas: tuple[float, float] = (0.9, 0.999)


def test_parameters_are_flattened_and_stringified(save_dir: Path, store: OpenStore) -> None:
    logger = MLFlowLogger(save_dir=save_dir)
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
            "weights": torch.tensor([1.0, 2.0]),
        }
    )
    logger.finalize("success")
    assert store(save_dir).params(logger.run_id) == {
        "lr": "0.001",
        "layers": "3",
        "amp": "False",
        "optimizer/name": "adamw",
        "optimizer/betas": "(0.9, 0.999)",
        "schedule/warmup": "100",
        "schedule/kind": "cosine",
        "data/path": "/data",
        "data/workers": "4",
        "dropout": "0.25",
        "seed": "7",
        "missing": "None",
        "sizes": "[64, 32]",
        "weights": "[1.0, 2.0]",
    }


def test_a_namespace_and_many_parameters_in_batches(save_dir: Path, store: OpenStore) -> None:
    logger = MLFlowLogger(save_dir=save_dir)
    many = {f"p{index:03d}": index for index in range(250)}  # MLflow takes 100 parameters per request
    logger.log_hyperparams(Namespace(**many))
    logger.finalize("success")
    assert store(save_dir).params(logger.run_id) == {key: str(value) for key, value in many.items()}


def test_long_values_are_cut_to_mlflows_limit_with_a_warning(save_dir: Path, store: OpenStore) -> None:
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    logger = MLFlowLogger(save_dir=save_dir)
    long_text = "x" * (MAX_PARAM_VAL_LENGTH + 10)
    with pytest.warns(UserWarning, match=rf"values of \['notes'\] are longer than MLflow's {MAX_PARAM_VAL_LENGTH}"):
        logger.log_hyperparams({"notes": long_text, "lr": 0.1})
    logger.finalize("success")
    params = store(save_dir).params(logger.run_id)
    assert params == {"notes": long_text[:MAX_PARAM_VAL_LENGTH], "lr": "0.1"}


def test_a_parameter_keeps_its_first_value(save_dir: Path, store: OpenStore) -> None:
    logger = MLFlowLogger(save_dir=save_dir)
    logger.log_hyperparams({"lr": 0.1, "batch": 32})
    logger.log_hyperparams({"lr": 0.1, "epochs": 3})  # the same value again, and a new name: fine
    with pytest.raises(ValueError, match=r"cannot change 'lr' from '0.1' to '0.2' in run \w+: MLflow keeps a param"):
        logger.log_hyperparams({"lr": 0.2, "other": 1})
    logger.finalize("success")
    assert store(save_dir).params(logger.run_id) == {"lr": "0.1", "batch": "32", "epochs": "3"}


def test_none_logs_no_parameters(save_dir: Path, store: OpenStore) -> None:
    logger = MLFlowLogger(save_dir=save_dir)
    logger.log_hyperparams(None)
    logger.finalize("success")
    assert store(save_dir).params(logger.run_id) == {}


# -- runs: status, names, resuming ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [("success", "FINISHED"), ("failed", "FAILED"), ("finished", "FINISHED"), ("killed", "KILLED")],
)
def test_finalize_sets_the_run_status(save_dir: Path, store: OpenStore, status: str, expected: str) -> None:
    logger = MLFlowLogger(save_dir=save_dir)
    logger.log_metrics({"x": 1.0}, step=0)
    assert store(save_dir).status(logger.run_id) == "RUNNING"
    logger.finalize(status)
    assert store(save_dir).status(logger.run_id) == expected


def test_an_unknown_status_is_refused(save_dir: Path) -> None:
    logger = MLFlowLogger(save_dir=save_dir)
    with pytest.raises(ValueError, match=r"finalize\(status='done'\): expected one of \['FAILED'"):
        logger.finalize("done")


def test_finalize_twice_keeps_the_first_status_and_logging_again_reopens(save_dir: Path, store: OpenStore) -> None:
    logger = MLFlowLogger(save_dir=save_dir)
    logger.finalize("success")  # never used: no run is made
    assert store(save_dir).runs("lightning_logs") == []
    logger.log_metrics({"x": 1.0}, step=0)
    logger.finalize("failed")
    assert logger.run_id and logger.experiment.get_run(logger.run_id)  # reading is not logging
    logger.finalize("success")  # teardown after the user's own finalize: nothing changes
    assert store(save_dir).status(logger.run_id) == "FAILED"
    logger.log_metrics({"x": 2.0}, step=1)  # the same run, ended again
    logger.finalize("success")
    runs = store(save_dir)
    assert runs.status(logger.run_id) == "FINISHED"
    assert runs.history(logger.run_id, "x") == [(0, 1.0), (1, 2.0)]
    assert len(runs.runs("lightning_logs")) == 1


def test_run_name_and_the_runname_tag(save_dir: Path, store: OpenStore) -> None:
    with pytest.warns(UserWarning, match=r"got run_name='a' and the tag mlflow.runName='b'; the run is named 'a'"):
        logger = MLFlowLogger(save_dir=save_dir, run_name="a", tags={"mlflow.runName": "b"})
        _ = logger.run_id
    assert store(save_dir).run(logger.run_id).info.run_name == "a"
    tagged = MLFlowLogger(save_dir=save_dir, tags={"mlflow.runName": "from-tag"})
    assert store(save_dir).run(tagged.run_id).info.run_name == "from-tag"


def test_resuming_a_run_by_id(save_dir: Path, store: OpenStore) -> None:
    first = MLFlowLogger(save_dir=save_dir, experiment_name="resume")
    first.log_hyperparams({"lr": 0.1})
    first.log_metrics({"loss": 1.0}, step=0)
    first.finalize("failed")

    second = MLFlowLogger(save_dir=save_dir, run_id=first.run_id, tags={"attempt": 2}, run_name="retried")
    assert store(save_dir).status(first.run_id) == "FAILED"
    second.log_metrics({"loss": 0.5}, step=1)
    assert store(save_dir).status(first.run_id) == "RUNNING"  # resumed runs run again
    second.log_hyperparams({"lr": 0.1, "epochs": 2})
    with pytest.raises(ValueError, match=r"cannot change 'lr' from '0.1' to '0.01'"):
        second.log_hyperparams({"lr": 0.01})  # the first run's value is known
    second.finalize("success")

    runs = store(save_dir)
    assert [run.info.run_id for run in runs.runs("resume")] == [first.run_id]
    assert second.experiment_id == first.experiment_id
    assert runs.history(first.run_id, "loss") == [(0, 1.0), (1, 0.5)]
    assert runs.params(first.run_id) == {"lr": "0.1", "epochs": "2"}
    assert runs.user_tags(first.run_id) == {"attempt": "2"}
    assert runs.run(first.run_id).info.run_name == "retried"
    assert runs.status(first.run_id) == "FINISHED"


def test_resuming_with_another_experiment_name_warns(save_dir: Path) -> None:
    first = MLFlowLogger(save_dir=save_dir, experiment_name="one")
    first.finalize("success")
    with pytest.warns(UserWarning, match=r"experiment_name='two'\) is ignored: run \w+ belongs to experiment 'one'"):
        MLFlowLogger(save_dir=save_dir, experiment_name="two", run_id=first.run_id).log_metrics({"x": 1.0})


def test_a_run_id_that_does_not_exist_is_a_clear_error(save_dir: Path) -> None:
    logger = MLFlowLogger(save_dir=save_dir, run_id="0123456789abcdef0123456789abcdef")
    message = (
        r"run_id='0123456789abcdef0123456789abcdef'\): there is no such run in the tracking store "
        r"'sqlite:///.*mlflow.db'.*leave run_id unset to start a new run"
    )
    with pytest.raises(ValueError, match=message):
        logger.log_metrics({"x": 1.0}, step=0)


def test_a_deleted_run_or_experiment_is_a_clear_error(save_dir: Path) -> None:
    first = MLFlowLogger(save_dir=save_dir, experiment_name="gone")
    first.finalize("success")
    client = first.experiment
    client.delete_run(first.run_id)
    with pytest.raises(ValueError, match=r"that run was deleted. Restore it"):
        _ = MLFlowLogger(save_dir=save_dir, run_id=first.run_id).run_id
    client.delete_experiment(first.experiment_id)
    with pytest.raises(ValueError, match=r"experiment_name='gone'\): that experiment was deleted .*mlflow gc"):
        _ = MLFlowLogger(save_dir=save_dir, experiment_name="gone").run_id


def test_artifact_location_of_a_new_experiment(save_dir: Path, tmp_path: Path) -> None:
    location = (tmp_path / "elsewhere").as_uri()
    logger = MLFlowLogger(save_dir=save_dir, experiment_name="located", artifact_location=location)
    run = logger.experiment.get_run(logger.run_id)
    assert run.info.artifact_uri == f"{location}/{logger.run_id}/artifacts"
    logger.finalize("success")
    with pytest.warns(UserWarning, match=r"artifact_location='.*other'\) is ignored: experiment 'located' exists"):
        _ = MLFlowLogger(save_dir=save_dir, experiment_name="located", artifact_location=str(tmp_path / "other")).run_id
    # The same location again is no news: no warning.
    _ = MLFlowLogger(save_dir=save_dir, experiment_name="located", artifact_location=location).run_id


def test_asynchronous_logging_is_all_stored_by_finalize(save_dir: Path, store: OpenStore) -> None:
    logger = MLFlowLogger(save_dir=save_dir, synchronous=False)
    for step in range(20):
        logger.log_metrics({"x": float(step)}, step=step)
    logger.log_hyperparams({"lr": 0.1})
    logger.finalize("success")
    runs = store(save_dir)
    assert runs.history(logger.run_id, "x") == [(step, float(step)) for step in range(20)]
    assert runs.params(logger.run_id) == {"lr": "0.1"}
    assert runs.status(logger.run_id) == "FINISHED"


# -- arguments, ranks, copies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"experiment_name": ""}, TypeError, r"experiment_name=''\): expected a non-empty string"),
        ({"run_id": 12}, TypeError, r"run_id=12\): expected a string or None"),
        ({"tags": ["a"]}, TypeError, r"tags=\['a'\]\): expected a dict"),
        ({"log_model": "best"}, ValueError, r"log_model='best'\): expected True .*'all'.* or False"),
        ({"synchronous": "yes"}, TypeError, r"synchronous='yes'\): expected True, False or None"),
    ],
)
def test_wrong_arguments_are_refused(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        MLFlowLogger(**kwargs)


def test_ranks_other_than_zero_log_nothing(save_dir: Path, store: OpenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = MLFlowLogger(save_dir=save_dir)
    logger.log_metrics({"x": 1.0}, step=0)
    logger.log_hyperparams({"lr": 0.1})
    logger.experiment.set_tag("run", "key", "value")  # a stand-in: does nothing
    assert logger.run_id is None and logger.experiment_id is None
    logger.save()
    logger.finalize("failed")
    assert store(save_dir).runs("lightning_logs") == []


def test_a_pickled_copy_logs_to_the_same_run(save_dir: Path, store: OpenStore) -> None:
    # ddp_spawn sends loggers to the new processes by pickling them.
    logger = MLFlowLogger(save_dir=save_dir)
    logger.log_metrics({"x": 1.0}, step=0)
    copy = pickle.loads(pickle.dumps(logger))
    assert copy.run_id == logger.run_id
    copy.log_metrics({"x": 2.0}, step=1)
    copy.finalize("success")
    assert store(save_dir).history(logger.run_id, "x") == [(0, 1.0), (1, 2.0)]


def test_repr_names_the_store_and_run(tmp_path: Path) -> None:
    logger = MLFlowLogger(save_dir=tmp_path, experiment_name="exp", run_id="abc")
    assert (
        repr(logger)
        == f"MLFlowLogger(experiment_name='exp', tracking_uri='sqlite:///{tmp_path}/mlflow.db', run_id='abc')"
    )
