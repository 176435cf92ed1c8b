"""The entry point: what it registers, what it imports, selection by name, and `fabric plugins`.

Discovery imports the entry-point module in every process; it must stay free of mlflow
(and of anything heavy that fabric_core does not import already).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fabric_core import Fabric
from fabric_core.discovery import lookup
from fabric_core.testing import (
    check_entry_point,
    check_import_is_light,
    check_listed_by_fabric_plugins,
    import_failure,
)

from fabric_mlflow import LOGGER_FACTORY, MLFlowLogger

LIGHT_UNTIL_THE_RUN_OPENS = """
# Selected by name: the logger's module is imported, but MLflow only when the run is opened.
fabric = Fabric(accelerator="cpu", loggers=["mlflow"])
assert "fabric_mlflow.logger" in sys.modules
assert not heavy_modules(), heavy_modules()
fabric.launch()
assert "mlflow" in sys.modules
"""


def test_fabric_core_entry_point_and_discovery_do_not_import_mlflow(
    tmp_path: Path, clean_env: Callable[..., dict[str, str]]
) -> None:
    check_import_is_light(
        tmp_path,
        "fabric_mlflow",
        "fabric-mlflow",
        heavy=["mlflow", "sqlalchemy", "alembic"],
        lazy=["fabric_mlflow.logger"],
        then=LIGHT_UNTIL_THE_RUN_OPENS,
        env=clean_env(),
    )
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()  # launch() opened the run


def test_the_logger_name_is_registered_lazily() -> None:
    record = check_entry_point("fabric-mlflow", {"loggers": ["mlflow"]})
    assert list(record.provides["loggers"]) == ["mlflow"]
    entry = lookup("logger", "mlflow")
    assert entry.factory == LOGGER_FACTORY == "fabric_mlflow.logger:MLFlowLogger"
    assert entry.distribution == "fabric-mlflow"
    assert dict(entry.init_params) == {}


def test_fabric_selects_the_logger_by_name(
    tmp_path: Path, save_dir: Path, monkeypatch: pytest.MonkeyPatch, store: Callable[[str | Path], Any]
) -> None:
    monkeypatch.chdir(tmp_path)  # the default save_dir, ./mlruns, is the fixture's folder
    fabric = Fabric(accelerator="cpu", loggers=["csv", "mlflow"])
    assert type(fabric.loggers[0]).__name__ == "CSVLogger"
    logger = fabric.loggers[1]
    assert isinstance(logger, MLFlowLogger)
    assert logger.save_dir == str(save_dir)

    def run(fabric: Fabric) -> None:
        fabric.log_dict({"loss": 0.5, "acc": 0.25}, step=4)

    fabric.launch(run)
    runs = store(save_dir)
    (run_info,) = runs.runs("lightning_logs")
    assert runs.history(run_info.info.run_id, "loss") == [(4, 0.5)]
    assert runs.history(run_info.info.run_id, "acc") == [(4, 0.25)]
    assert run_info.info.status == "FINISHED"


def test_fabric_plugins_lists_fabric_mlflow(clean_env: Callable[..., dict[str, str]]) -> None:
    check_listed_by_fabric_plugins(
        "fabric-mlflow",
        version="0.1.0",
        entry_point="mlflow = fabric_mlflow",
        provides={"loggers": ["mlflow"]},
        env=clean_env(),
    )


def test_missing_mlflow_names_the_pip_command(tmp_path: Path, clean_env: Callable[..., dict[str, str]]) -> None:
    failure = import_failure(
        tmp_path, 'Fabric(accelerator="cpu", loggers=["mlflow"])', missing=["mlflow"], env=clean_env()
    )
    assert failure.type == "ModuleNotFoundError", failure
    assert failure.message.startswith(
        "MLFlowLogger logs with the mlflow package, which is not installed. pip install fabric-mlflow (which "
        "pulls in mlflow-skinny, the MLflow client), or pip install mlflow for its UI and server too."
    ), failure.message


def test_a_broken_mlflow_names_the_cause_and_the_fix(tmp_path: Path, clean_env: Callable[..., dict[str, str]]) -> None:
    failure = import_failure(
        tmp_path,
        'logger.log_metrics({"x": 1.0}, step=0)',
        setup="from fabric_mlflow import MLFlowLogger\nlogger = MLFlowLogger()",
        missing=["mlflow"],  # a broken installation: the import fails
        env=clean_env(),
    )
    assert failure.message.startswith("MLFlowLogger could not import mlflow (ModuleNotFoundError: "), failure.message
    assert "pip install --force-reinstall mlflow-skinny" in failure.message
    assert failure.cause.startswith("ModuleNotFoundError("), failure.cause
