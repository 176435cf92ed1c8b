"""The entry point: what it registers, what it imports, selection by name, and `fabric plugins`.

Discovery imports the entry-point module in every process; it must stay free of mlflow
(and of anything heavy that fabric_core does not import already).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fabric_core import Fabric
from fabric_core.discovery import discover, lookup

from fabric_mlflow import LOGGER_FACTORY, MLFlowLogger

CORE_ALONE = """
import sys
import fabric_core
from fabric_core import Fabric
Fabric(accelerator="cpu", devices=1)  # a whole run's discovery and selection, with autoload on
heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("mlflow", "fabric_mlflow", "sqlalchemy"))
assert heavy == ["fabric_mlflow"], heavy  # the entry point alone
print("CORE ALONE")
"""

ISOLATION = """
import sys
import fabric_core
from fabric_core import Fabric

def mlflow_modules():
    return sorted(name for name in sys.modules if name.split(".")[0] in ("mlflow", "sqlalchemy", "alembic"))

before = set(sys.modules)
import fabric_mlflow
added = sorted(set(sys.modules) - before)
assert all(name == "fabric_mlflow" or name.startswith("fabric_core.") for name in added), added

from fabric_core.discovery import discover
(record,) = discover().records_for("fabric-mlflow")
assert record.status == "loaded", record
assert "fabric_mlflow.logger" not in sys.modules

# Selected by name: the logger's module is imported, but MLflow only when the run is opened.
fabric = Fabric(accelerator="cpu", loggers=["mlflow"])
assert "fabric_mlflow.logger" in sys.modules
assert not mlflow_modules(), mlflow_modules()
fabric.launch()
assert "mlflow" in sys.modules
print("ISOLATED", added)
"""


@pytest.fixture
def python(clean_env: Callable[..., dict[str, str]], tmp_path: Path) -> Callable[..., Any]:
    """Run ``python -c code`` in ``tmp_path`` with a clean environment (plugin autoload on)."""

    def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=clean_env(**env),
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def test_import_fabric_core_does_not_import_mlflow(python: Callable[..., Any]) -> None:
    result = python(CORE_ALONE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CORE ALONE" in result.stdout


def test_entry_point_and_discovery_do_not_import_mlflow(python: Callable[..., Any], tmp_path: Path) -> None:
    result = python(ISOLATION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ISOLATED" in result.stdout
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()  # launch() opened the run


def test_the_logger_name_is_registered_lazily() -> None:
    (record,) = discover().records_for("fabric-mlflow")
    assert record.status == "loaded", record.reason
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


@pytest.mark.parametrize("flag", ["", "--json"])
def test_fabric_plugins_lists_fabric_mlflow(flag: str, clean_env: Callable[..., dict[str, str]]) -> None:
    command = [sys.executable, "-m", "fabric_core.cli", "plugins", *([flag] if flag else [])]
    result = subprocess.run(command, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    if flag:
        records = [r for r in json.loads(result.stdout)["plugins"] if r["distribution"] == "fabric-mlflow"]
        assert len(records) == 1, records
        assert records[0]["status"] == "loaded", records[0]
        assert records[0]["entry_point"] == "mlflow = fabric_mlflow"
        assert records[0]["provides"]["loggers"] == ["mlflow"]
    else:
        assert "fabric-mlflow 0.1.0  [loaded]  (mlflow = fabric_mlflow)" in result.stdout
        assert "    loggers: mlflow" in result.stdout


MISSING = """
import sys
sys.modules["mlflow"] = None  # as if the package were not installed
from fabric_core import Fabric
try:
    Fabric(accelerator="cpu", loggers=["mlflow"])
except ModuleNotFoundError as err:
    print("ERROR:", err)
    sys.exit(0)
print("NO ERROR")
"""


def test_missing_mlflow_names_the_pip_command(python: Callable[..., Any]) -> None:
    result = python(MISSING)
    assert result.returncode == 0, result.stderr
    assert (
        "ERROR: MLFlowLogger logs with the mlflow package, which is not installed. pip install fabric-mlflow (which "
        "pulls in mlflow-skinny, the MLflow client), or pip install mlflow for its UI and server too."
    ) in result.stdout


BROKEN = """
import sys
from fabric_mlflow import MLFlowLogger
logger = MLFlowLogger()
sys.modules["mlflow"] = None  # a broken installation: the import fails
try:
    logger.log_metrics({"x": 1.0}, step=0)
except ImportError as err:
    print("ERROR:", err)
    print("CAUSE:", repr(err.__cause__))
"""


def test_a_broken_mlflow_names_the_cause_and_the_fix(python: Callable[..., Any]) -> None:
    result = python(BROKEN)
    assert result.returncode == 0, result.stderr
    assert "ERROR: MLFlowLogger could not import mlflow (ModuleNotFoundError: " in result.stdout
    assert "pip install --force-reinstall mlflow-skinny" in result.stdout
    assert "CAUSE: ModuleNotFoundError(" in result.stdout
