"""Shared setup for fabric-mlflow's tests.

These tests run with plugin autoload **on**: they test the add-on as users get it, found
through its entry point. fabric-core's own suite switches autoload off per test, which does
not reach here; in case a switch leaks in from the environment, every test here clears
them, and subprocesses get an environment without them.

What a logger wrote is read back with MLflow's own ``MlflowClient``, on the same tracking
store, through the ``store`` fixture. MLflow's telemetry is switched off (these tests have
no network, and must not report), and so is any tracking URI of the environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: Switches of fabric-core's discovery; none may be set for these tests.
SWITCHES = ("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "FABRIC_PLUGINS", "FABRIC_BLOCK_PLUGINS")
#: Variables a launcher or an earlier run may leave behind, which would change a child's role.
_RUN_VARIABLES = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR", "NODE_RANK")
#: MLflow settings of the environment that would send these tests' runs elsewhere.
_MLFLOW_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ENABLE_ASYNC_LOGGING")
#: Settings every test process gets: no MLflow telemetry (there is no network here, and tests must not report).
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}

os.environ.update(QUIET)


def clean_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without fabric-core's switches, run variables and MLflow's
    tracking settings, plus ``overrides``.

    ``OMP_NUM_THREADS=1``: two ranks on two cores; more threads each only contend.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in SWITCHES
        and key not in _RUN_VARIABLES
        and key not in _MLFLOW_VARIABLES
        and not key.startswith("FABRIC_")
    }
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(QUIET)
    env.update(overrides)
    return env


@dataclass
class Run:
    returncode: int
    output: str

    def check(self) -> str:
        assert self.returncode == 0, self.output
        return self.output


@pytest.fixture(autouse=True)
def _autoload_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from fabric_core.discovery import reset
    from fabric_core.utilities.rank_zero import rank_zero_only

    for switch in SWITCHES:
        monkeypatch.delenv(switch, raising=False)
    for variable in _MLFLOW_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    # A Fabric of an earlier test may have set another rank; these tests run as rank 0.
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    reset()
    yield
    reset()


@pytest.fixture
def clean_env() -> Callable[..., dict[str, str]]:
    """:func:`clean_environment`, for tests that start their own subprocesses."""
    return clean_environment


@pytest.fixture
def run_script(tmp_path: Path) -> Callable[..., Run]:
    """Write ``source`` to ``tmp_path/script.py`` and run it in ``tmp_path``; stdout and stderr together."""

    def run(source: str, *args: str, timeout: float = 240, env: dict[str, str] | None = None) -> Run:
        script = tmp_path / "script.py"
        script.write_text(textwrap.dedent(source))
        result = subprocess.run(
            [sys.executable, str(script), *args],
            cwd=tmp_path,
            env=clean_environment(**(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Run(result.returncode, result.stdout + result.stderr)

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
