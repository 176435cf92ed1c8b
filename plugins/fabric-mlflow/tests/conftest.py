"""Shared setup for fabric-mlflow's tests.

These tests run with plugin autoload **on**: they test the add-on as users get it, found
through its entry point. Each test starts from a clean environment (the kit's
:func:`fabric_core.testing.isolated_environment`: no ``FABRIC_*`` switch or launcher
variable leaking in, rank-zero output on rank 0), and subprocesses get one without them.

What a logger wrote is read back with MLflow's own ``MlflowClient``, on the same tracking
store, through the ``store`` fixture. MLflow's telemetry is switched off (these tests have
no network, and must not report), and so is any tracking URI of the environment.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fabric_core.testing import ScriptRun, isolated_environment
from fabric_core.testing import clean_environment as clean_process_environment
from fabric_core.testing import run_script as run_program

#: MLflow settings of the environment that would send these tests' runs elsewhere.
_MLFLOW_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ENABLE_ASYNC_LOGGING")
#: Settings every test process gets: no MLflow telemetry (there is no network here, and tests must not report).
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}

os.environ.update(QUIET)

#: what the ``run_script`` fixture returns (``returncode``, ``output``; ``check()`` asserts success)
Run = ScriptRun


def clean_environment(**overrides: str) -> dict[str, str]:
    """:func:`fabric_core.testing.clean_environment` without MLflow's tracking settings, quiet, plus ``overrides``."""
    env = {key: value for key, value in clean_process_environment().items() if key not in _MLFLOW_VARIABLES}
    env.update(QUIET)
    env.update(overrides)
    return env


@pytest.fixture(autouse=True)
def _autoload_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for variable in _MLFLOW_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    with isolated_environment(monkeypatch, autoload=True):
        yield


@pytest.fixture
def clean_env() -> Callable[..., dict[str, str]]:
    """:func:`clean_environment`, for tests that start their own subprocesses."""
    return clean_environment


@pytest.fixture
def run_script(tmp_path: Path) -> Callable[..., Run]:
    """Write ``source`` to ``tmp_path/script.py`` and run it in ``tmp_path``; stdout and stderr together.

    The run (:func:`fabric_core.testing.run_script`) starts from this process's environment, from which
    ``_autoload_on`` removed MLflow's tracking settings; ``QUIET`` is set in it for good.
    """

    def run(source: str, *args: str, timeout: float = 240, env: dict[str, str] | None = None) -> Run:
        return run_program(tmp_path, source, *args, timeout=timeout, env={**QUIET, **(env or {})})

    return run


@pytest.fixture(scope="session")
def _empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store with MLflow's tables made, once: creating them takes seconds, copying it none."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("empty-store")
    MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


@pytest.fixture
def save_dir(tmp_path: Path, _empty_store: Path) -> Path:
    """``tmp_path/mlruns``, holding a ready ``mlflow.db``: the folder to pass as ``MLFlowLogger(save_dir=...)``."""
    folder = tmp_path / "mlruns"
    folder.mkdir()
    shutil.copyfile(_empty_store, folder / "mlflow.db")
    return folder


class Store:
    """A tracking store read back with MLflow's own client."""

    def __init__(self, tracking_uri: str) -> None:
        from mlflow import MlflowClient

        self.client: Any = MlflowClient(tracking_uri=tracking_uri)

    def run(self, run_id: str) -> Any:
        return self.client.get_run(run_id)

    def history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """``(step, value)`` of every value logged for ``key``, in the order logged."""
        metrics = self.client.get_metric_history(run_id, key)
        return [(metric.step, metric.value) for metric in sorted(metrics, key=lambda m: (m.timestamp, m.step))]

    def metric_keys(self, run_id: str) -> list[str]:
        return sorted(self.run(run_id).data.metrics)

    def params(self, run_id: str) -> dict[str, str]:
        return dict(self.run(run_id).data.params)

    def user_tags(self, run_id: str) -> dict[str, str]:
        """The run's tags without MLflow's own (``mlflow.*``)."""
        return {key: value for key, value in self.run(run_id).data.tags.items() if not key.startswith("mlflow.")}

    def status(self, run_id: str) -> str:
        return str(self.run(run_id).info.status)

    def runs(self, experiment_name: str) -> list[Any]:
        experiment = self.client.get_experiment_by_name(experiment_name)
        if experiment is None:
            return []
        return list(self.client.search_runs([experiment.experiment_id]))

    def artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        """Every artifact file of the run under ``path``, recursively."""
        found: list[str] = []
        for info in self.client.list_artifacts(run_id, path):
            if info.is_dir:
                found.extend(self.artifacts(run_id, info.path))
            else:
                found.append(info.path)
        return sorted(found)


@pytest.fixture
def store() -> Callable[[str | Path], Store]:
    """``store(tracking_uri or save_dir)``: the runs there, read with ``MlflowClient`` (see :class:`Store`)."""

    def open_store(where: str | Path) -> Store:
        uri = str(where) if "://" in str(where) else f"sqlite:///{Path(where) / 'mlflow.db'}"
        return Store(uri)

    return open_store
