"""Opening an MLflow run: the tracking store, the experiment, the run, and errors that say what to do.

Everything here runs on global rank 0, the first time the logger needs its run (at
``fabric.launch()``, or at the first write for a logger used without Fabric). MLflow is
imported here, never at module level.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

#: The file of the default store, a SQLite database in ``save_dir``.
DATABASE_FILE = "mlflow.db"
#: The folder in ``save_dir`` that holds the artifacts of experiments created in the default store.
ARTIFACTS_FOLDER = "artifacts"


def require_mlflow() -> None:
    """Raise ``ModuleNotFoundError`` naming the fix when the mlflow package is missing (without importing it)."""
    try:
        found = importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ModuleNotFoundError(
            "MLFlowLogger logs with the mlflow package, which is not installed. pip install fabric-mlflow (which "
            "pulls in mlflow-skinny, the MLflow client), or pip install mlflow for its UI and server too.",
            name="mlflow",
        )


def default_tracking_uri(save_dir: str) -> str:
    """``sqlite:///<save_dir>/mlflow.db``, with ``save_dir`` made absolute (the store outlives the working folder)."""
    folder = Path(os.path.expanduser(os.path.expandvars(save_dir))).absolute()
    return f"sqlite:///{folder / DATABASE_FILE}"


def local_folder(tracking_uri: str) -> str | None:
    """The local folder of a ``file:`` store or of a SQLite database; ``None`` for a server."""
    parsed = urlparse(tracking_uri)
    database = _sqlite_file(tracking_uri)
    if database is not None:
        return str(database.parent)
    if parsed.scheme == "file":
        return parsed.path
    if parsed.scheme == "" and tracking_uri not in ("databricks", "databricks-uc", "uc"):
        return tracking_uri
    return None


def connect(tracking_uri: str) -> MlflowClient:
    """An ``MlflowClient`` for ``tracking_uri``, checked: ``ValueError`` for a store MLflow cannot use,
    ``ConnectionError`` for a server that cannot be reached."""
    try:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
    except Exception as err:
        raise ImportError(
            f"MLFlowLogger could not import mlflow ({type(err).__name__}: {err}). "
            "pip install --force-reinstall mlflow-skinny, or reinstall fabric-mlflow."
        ) from err
    if urlparse(tracking_uri).scheme in ("http", "https"):
        _probe_server(tracking_uri)
    try:
        database = _sqlite_file(tracking_uri)
        if database is not None:  # older MLflow does not make the folder, and retries for minutes
            database.parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri=tracking_uri)
        client.get_experiment_by_name("Default")  # the first request: opens (or creates) the store
    except Exception as err:  # MlflowException, or what the store's backend raised (OSError, SQLAlchemy's errors)
        reason = err.message if isinstance(err, MlflowException) else f"{type(err).__name__}: {err}."
        if type(err).__name__.startswith("Unsupported"):  # MLflow names the model registry here, not the store
            reason = f"MLflow has no tracking store for {urlparse(tracking_uri).scheme!r} URIs."
        raise ValueError(
            f"MLFlowLogger cannot use the MLflow tracking store {tracking_uri!r}: {reason} Pass tracking_uri= "
            "(or set MLFLOW_TRACKING_URI to) 'sqlite:///path/to/mlflow.db', 'http://host:port' of an MLflow "
            "server, or leave both unset for a SQLite store in save_dir."
        ) from err
    return client


def _sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, ``None`` for other stores and in-memory databases."""
    if not tracking_uri.startswith("sqlite:///") or ":memory:" in tracking_uri:
        return None
    return Path(tracking_uri[len("sqlite:///") :].split("?", 1)[0])


def _probe_server(tracking_uri: str) -> None:
    """Fail within seconds when nothing answers at ``tracking_uri``.

    MLflow retries a request that cannot connect for minutes (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
    with backoff), so one plain request comes first: any HTTP answer, even an error status, means
    a server is there. TLS problems are left to MLflow, which has its own certificate settings.
    """
    import requests

    try:
        requests.get(tracking_uri, timeout=10)
    except requests.exceptions.SSLError:
        return
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
        raise ConnectionError(
            f"MLFlowLogger could not reach the MLflow tracking server at {tracking_uri!r}: {err}. Start it "
            "(mlflow server --host 0.0.0.0 --port 5000), or correct tracking_uri (or MLFLOW_TRACKING_URI)."
        ) from err


def open_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, created (with ``artifact_location``) when there is none."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return str(client.create_experiment(name, artifact_location=artifact_location))
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            # Another process created it between our lookup and our create: use theirs.
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise ValueError(
            f"MLFlowLogger(experiment_name={name!r}): that experiment was deleted (id {experiment.experiment_id}), "
            "and MLflow keeps its name. Restore it (mlflow experiments restore --experiment-id "
            f"{experiment.experiment_id}), delete it for good (mlflow gc), or choose another experiment_name."
        )
    if artifact_location is not None and not _same_location(experiment.artifact_location, artifact_location):
        warnings.warn(
            f"MLFlowLogger(artifact_location={artifact_location!r}) is ignored: experiment {name!r} exists "
            f"already, and keeps its artifacts in {experiment.artifact_location!r}. An experiment's artifact "
            "location is set when it is created; choose a new experiment_name to use another.",
            UserWarning,
            stacklevel=2,
        )
    return str(experiment.experiment_id)


def _same_location(stored: str, given: str) -> bool:
    return stored.rstrip("/") in (given.rstrip("/"), Path(given).absolute().as_uri().rstrip("/"))


def start_run(client: MlflowClient, experiment_id: str, run_name: str | None, tags: dict[str, str]) -> Run:
    """A new run, tagged with ``tags`` and what MLflow finds out itself (source file, user, git commit)."""
    from mlflow.tracking.context.registry import resolve_tags

    return client.create_run(experiment_id, tags=resolve_tags(tags), run_name=run_name)


def resume_run(client: MlflowClient, tracking_uri: str, run_id: str) -> Run:
    """The existing run ``run_id``, marked running again (as ``mlflow.start_run(run_id=...)`` does)."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        if err.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        raise ValueError(
            f"MLFlowLogger(run_id={run_id!r}): there is no such run in the tracking store {tracking_uri!r} "
            f"({err.message}). Pass the id of a run in this store (logger.run_id of the earlier run, or the MLflow "
            "UI), check tracking_uri, or leave run_id unset to start a new run."
        ) from err
    if run.info.lifecycle_stage == "deleted":
        raise ValueError(
            f"MLFlowLogger(run_id={run_id!r}): that run was deleted. Restore it in the MLflow UI (or "
            "MlflowClient().restore_run(run_id)), or leave run_id unset to start a new run."
        )
    client.update_run(run_id, status="RUNNING")
    return run


def existing_params(client: MlflowClient, run_id: str) -> dict[str, str]:
    """The parameters the run holds already (a resumed run), which MLflow will not let change."""
    params: dict[str, Any] = client.get_run(run_id).data.params
    return {str(key): str(value) for key, value in params.items()}
