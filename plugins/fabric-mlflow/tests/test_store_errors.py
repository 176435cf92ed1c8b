"""A tracking store that cannot be used fails at fabric.launch(), before training, with what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from fabric_core import Fabric
from fabric_core.environments.local import find_free_port

from fabric_mlflow import MLFlowLogger


def _train(fabric: Fabric) -> None:
    raise AssertionError("training started although the tracking store cannot be used")


@pytest.mark.timeout(60)
def test_an_unreachable_server_fails_at_launch_within_seconds() -> None:
    uri = f"http://127.0.0.1:{find_free_port()}"  # nothing listens there
    fabric = Fabric(accelerator="cpu", loggers=[MLFlowLogger(tracking_uri=uri)])
    message = (
        rf"could not reach the MLflow tracking server at '{uri}': .*"
        r"Start it \(mlflow server .*\), or correct tracking_uri \(or MLFLOW_TRACKING_URI\)"
    )
    with pytest.raises(ConnectionError, match=message):
        fabric.launch(_train)


def test_a_scheme_mlflow_has_no_store_for_is_refused_at_launch() -> None:
    fabric = Fabric(accelerator="cpu", loggers=[MLFlowLogger(tracking_uri="mlfow://localhost/runs")])
    message = (
        r"cannot use the MLflow tracking store 'mlfow://localhost/runs': MLflow has no tracking store for 'mlfow' "
        r"URIs. Pass tracking_uri= .*'sqlite:///path/to/mlflow.db'"
    )
    with pytest.raises(ValueError, match=message):
        fabric.launch(_train)


def test_a_store_that_cannot_be_opened_is_refused_at_launch(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("a file where the store's folder should be")
    uri = f"sqlite:///{tmp_path / 'not-a-folder' / 'mlflow.db'}"
    fabric = Fabric(accelerator="cpu", loggers=[MLFlowLogger(tracking_uri=uri)])
    with pytest.raises(ValueError, match=r"cannot use the MLflow tracking store 'sqlite:///.*not-a-folder/mlflow.db'"):
        fabric.launch(_train)
