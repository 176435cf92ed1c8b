"""Metrics, parameters, tags and checkpoints in an MLflow run (Lightning's ``MLFlowLogger``)."""

from __future__ import annotations

import os
import time
import warnings
from argparse import Namespace
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fabric_core.hookspecs import hookimpl
from fabric_core.loggers import Logger
from fabric_core.loggers.logger import flatten_params
from fabric_core.utilities.rank_zero import rank_zero_only

from fabric_mlflow import _store
from fabric_mlflow._arguments import check_arguments
from fabric_mlflow._convert import (
    DEFAULT_PARAM_LENGTH,
    checked_step,
    metric_entries,
    param_strings,
    valid_name,
)
from fabric_mlflow._lifetime import STATUSES, NoExperiment, wait_before_interpreter_shutdown

if TYPE_CHECKING:
    from fabric_core import Fabric
    from mlflow import MlflowClient

#: MLflow's limits on one ``log_batch`` request.
_PARAMS_PER_BATCH = 100
_METRICS_PER_BATCH = 1000
_DEFAULT_EXPERIMENT = "lightning_logs"
_DEFAULT_SAVE_DIR = "./mlruns"


class MLFlowLogger(Logger):
    """Log to an MLflow run, on global rank 0.

    The run is opened when the logger is first needed: at ``fabric.launch()`` (so that a
    tracking store that cannot be used fails before training starts), or at the first write
    of a logger used without Fabric. MLflow is imported then, not before.

    :param experiment_name: the experiment to log to, created when it does not exist.
    :param run_name: the run's name (MLflow makes one up when omitted).
    :param tracking_uri: where runs are stored: ``sqlite:///path/mlflow.db``, ``http(s)://host:port``
        of an MLflow server, ``databricks``, ... When omitted, ``MLFLOW_TRACKING_URI``, and
        without that a SQLite database ``save_dir/mlflow.db``.
    :param tags: tags for the run (values become strings).
    :param save_dir: the folder of the default store, used when neither ``tracking_uri`` nor
        ``MLFLOW_TRACKING_URI`` says otherwise; artifacts of experiments created there go to
        ``save_dir/artifacts``.
    :param log_model: ``True`` logs the checkpoints that ``fabric.save`` wrote as artifacts
        when the run ends; ``"all"`` logs each one as soon as it is written; ``False`` none.
    :param checkpoint_path_prefix: put in front of the checkpoints' artifact path
        (``<prefix>model/checkpoints/<name>``).
    :param prefix: put in front of every metric name, joined with ``-``.
    :param artifact_location: where a newly created experiment keeps its artifacts.
    :param run_id: an existing run to go on logging to (its experiment is used).
    :param synchronous: ``False`` sends metrics and parameters in the background (MLflow's
        asynchronous logging; everything is sent by :meth:`save` and :meth:`finalize`);
        ``True`` waits for each; ``None`` follows ``MLFLOW_ENABLE_ASYNC_LOGGING``.
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        experiment_name: str = _DEFAULT_EXPERIMENT,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: Mapping[str, Any] | None = None,
        save_dir: str | Path | None = _DEFAULT_SAVE_DIR,
        log_model: bool | str = False,
        checkpoint_path_prefix: str = "",
        prefix: str = "",
        artifact_location: str | None = None,
        run_id: str | None = None,
        synchronous: bool | None = None,
    ) -> None:
        check_arguments(experiment_name, run_name, tracking_uri, tags, log_model, run_id, synchronous)
        _store.require_mlflow()
        self._experiment_name = experiment_name
        self._run_name = run_name
        self._tags = {str(key): str(value) for key, value in (tags or {}).items()}
        self._save_dir = os.fspath(save_dir) if save_dir is not None else _DEFAULT_SAVE_DIR
        self._tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
        if self._tracking_uri is None:
            self._tracking_uri = _store.default_tracking_uri(self._save_dir)
            if artifact_location is None:
                artifact_location = Path(self._save_dir, _store.ARTIFACTS_FOLDER).absolute().as_uri()
        elif save_dir is not None and os.fspath(save_dir) != _DEFAULT_SAVE_DIR:
            source = "tracking_uri" if tracking_uri else "MLFLOW_TRACKING_URI"
            warnings.warn(
                f"MLFlowLogger(save_dir={self._save_dir!r}) is not used: runs go to {self._tracking_uri!r}, from "
                f"{source}. save_dir is the folder of the default store, used when neither tracking_uri nor "
                "MLFLOW_TRACKING_URI is set; leave it out, or unset those.",
                UserWarning,
                stacklevel=2,
            )
        self._artifact_location = artifact_location
        self._log_model = log_model
        self._checkpoint_path_prefix = checkpoint_path_prefix
        self._prefix = prefix
        self._run_id = run_id
        self._batch_kwargs: dict[str, Any] = {} if synchronous is None else {"synchronous": synchronous}
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None
        self._params: dict[str, str] | None = None  # the run's parameters, once read
        self._pending: list[Any] = []  # asynchronous writes not yet known to be done
        self._checkpoints: dict[Path, None] = {}  # saved with log_model=True, logged at finalize
        self._renamed: set[str] = set()  # names already warned about
        self._steps_logged = 0
        self._active = False  # whether the run was opened or written to since the last finalize
        self._waits_at_shutdown = False  # whether asynchronous writes are waited for at interpreter shutdown

    # -- the run ------------------------------------------------------------------------------

    @property
    def experiment(self) -> MlflowClient:
        """The run's ``MlflowClient``, for anything else MLflow offers (``experiment.log_dict(run_id, ...)``).

        Opens the run on first use. On ranks other than global rank 0 this is a stand-in whose
        methods do nothing, so code that writes through it need not check the rank.
        """
        if rank_zero_only.rank != 0:  # type: ignore[attr-defined]
            return NoExperiment()  # type: ignore[return-value]
        if self._client is None:
            self._open_run()
            self._active = True
        assert self._client is not None
        return self._client

    def _open_run(self) -> None:
        client = _store.connect(self.tracking_uri)
        if self._run_id is not None:
            run = _store.resume_run(client, self.tracking_uri, self._run_id)
            self._experiment_id = str(run.info.experiment_id)
            self._check_resumed_experiment(client)
            if self._tags:
                from mlflow.entities import RunTag

                client.log_batch(self._run_id, tags=[RunTag(key, value) for key, value in self._tags.items()])
            if self._run_name is not None:
                client.update_run(self._run_id, name=self._run_name)
        else:
            self._experiment_id = _store.open_experiment(client, self._experiment_name, self._artifact_location)
            run = _store.start_run(client, self._experiment_id, self._run_name, self._run_tags())
            self._run_id = str(run.info.run_id)
            self._params = {}
        self._client = client

    def _run_tags(self) -> dict[str, str]:
        tags = dict(self._tags)
        name = tags.pop("mlflow.runName", None)
        if name is not None and self._run_name is not None and name != self._run_name:
            warnings.warn(
                f"MLFlowLogger got run_name={self._run_name!r} and the tag mlflow.runName={name!r}; the run is named "
                f"{self._run_name!r}. Give the name once, as run_name.",
                UserWarning,
                stacklevel=4,
            )
        elif name is not None:
            tags["mlflow.runName"] = name
        return tags

    def _check_resumed_experiment(self, client: MlflowClient) -> None:
        if self._experiment_name == _DEFAULT_EXPERIMENT:
            return
        experiment = client.get_experiment(str(self._experiment_id))
        if experiment.name != self._experiment_name:
            warnings.warn(
                f"MLFlowLogger(experiment_name={self._experiment_name!r}) is ignored: run {self._run_id} belongs to "
                f"experiment {experiment.name!r}, and goes on logging there. Leave experiment_name out when "
                "resuming a run by run_id.",
                UserWarning,
                stacklevel=4,
            )

    @property
    def run_id(self) -> str | None:
        """The run's id (opens the run on rank 0; ``None`` on other ranks unless given)."""
        _ = self.experiment
        return self._run_id

    @property
    def experiment_id(self) -> str | None:
        """The experiment's id (opens the run on rank 0; ``None`` on other ranks)."""
        _ = self.experiment
        return self._experiment_id

    @property
    def name(self) -> str | None:
        """The experiment's id, as in Lightning."""
        return self.experiment_id

    @property
    def version(self) -> str | None:
        """The run's id, as in Lightning."""
        return self.run_id

    @property
    def tracking_uri(self) -> str:
        assert self._tracking_uri is not None
        return self._tracking_uri

    @property
    def save_dir(self) -> str | None:
        """The local folder of the store (``None`` for a tracking server)."""
        return _store.local_folder(self.tracking_uri)

    @property
    def root_dir(self) -> str | None:
        return self.save_dir

    # -- writing ------------------------------------------------------------------------------

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log each metric at ``step``; a dict value is flattened (``{"loss": {"val": x}}`` to ``loss/val``).

        Values are numbers or one-element tensors; anything else raises a ``ValueError`` naming
        the metric, before anything is sent. Characters MLflow refuses in a name are removed,
        with a warning. Without a ``step``, the step is the number of earlier calls.
        """
        step = self._steps_logged if step is None else checked_step(step)
        entries = metric_entries(metrics, self._prefix, self.LOGGER_JOIN_CHAR)
        timestamp = int(time.time() * 1000)
        _ = self.experiment  # opens the run, importing MLflow
        from mlflow.entities import Metric

        self._steps_logged += 1
        batch = []
        for given, key, value in entries:
            self._warn_renamed("metric", given, key)
            batch.append(Metric(key=key, value=value, timestamp=timestamp, step=step))
        for start in range(0, len(batch), _METRICS_PER_BATCH):
            self._write(metrics=batch[start : start + _METRICS_PER_BATCH])

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace | None) -> None:  # type: ignore[override]
        """Log the run's parameters, flattened (``{"optim": {"lr": 0.1}}`` to ``optim/lr``), as strings.

        A value longer than MLflow allows is cut to that length, with a warning. MLflow keeps a
        parameter's first value: logging a name again with the same value does nothing, with
        another value raises a ``ValueError``.
        """
        flat = {}
        for given, value in flatten_params(params if params is not None else {}).items():
            key = valid_name("parameter", given)
            self._warn_renamed("parameter", given, key)
            flat[key] = value
        limit = _max_param_length()
        values, truncated = param_strings(flat, limit)
        if truncated:
            warnings.warn(
                f"MLFlowLogger.log_hyperparams: the values of {truncated} are longer than MLflow's {limit} characters "
                "and were cut to that length. Log long values as an artifact instead "
                "(logger.experiment.log_text(logger.run_id, text, 'params.txt')).",
                UserWarning,
                stacklevel=3,
            )
        known = self._known_params()  # opens the run, importing MLflow
        from mlflow.entities import Param

        changed = {key: (known[key], value) for key, value in values.items() if key in known and known[key] != value}
        if changed:
            details = ", ".join(f"{key!r} from {old!r} to {new!r}" for key, (old, new) in changed.items())
            raise ValueError(
                f"MLFlowLogger.log_hyperparams cannot change {details} in run {self._run_id}: MLflow keeps a "
                "parameter's first value. Log the new value under another name, or start a new run."
            )
        new = [Param(key, value) for key, value in values.items() if key not in known]
        for start in range(0, len(new), _PARAMS_PER_BATCH):
            self._write(params=new[start : start + _PARAMS_PER_BATCH])
        known.update((param.key, param.value) for param in new)

    def _known_params(self) -> dict[str, str]:
        client = self.experiment
        if self._params is None:
            assert self._run_id is not None
            self._params = _store.existing_params(client, self._run_id)
        return self._params

    def _write(self, **batch: Any) -> None:
        client = self.experiment
        operation = client.log_batch(self._run_id, **batch, **self._batch_kwargs)
        self._active = True
        if operation is not None:  # asynchronous: a handle to wait on
            if not self._waits_at_shutdown:
                wait_before_interpreter_shutdown(self)
                self._waits_at_shutdown = True
            self._pending.append(operation)

    def _warn_renamed(self, what: str, given: str, key: str) -> None:
        if key != given and given not in self._renamed:
            self._renamed.add(given)
            warnings.warn(
                f"MLFlowLogger logs {what} {given!r} as {key!r}: MLflow allows only letters, digits, spaces and "
                "'_ - . / :' in names. Rename it to silence this.",
                RuntimeWarning,
                stacklevel=4,
            )

    # -- checkpoints --------------------------------------------------------------------------

    @hookimpl(wrapper=True)
    def fabric_save_checkpoint(self, fabric: Fabric, path: Path) -> Generator[None, Any, Any]:
        """After the strategy wrote ``path``: with ``log_model``, log it (``"all"``) or remember it (``True``)."""
        result = yield
        if self._log_model:
            if self._log_model == "all" and fabric.world_size > 1:
                fabric.barrier("fabric_mlflow.log_model")  # sharded checkpoints: every rank has written its part
            self._checkpoint_saved(Path(path).absolute())
        return result

    @rank_zero_only
    def _checkpoint_saved(self, path: Path) -> None:
        if self._log_model == "all":
            self._log_checkpoint(path)
        else:
            self._checkpoints.pop(path, None)
            self._checkpoints[path] = None  # in the order of the last save

    def _log_checkpoint(self, path: Path) -> None:
        artifact_path = f"{self._checkpoint_path_prefix}model/checkpoints/{path.stem}"
        client = self.experiment
        self._active = True
        if path.is_dir():
            client.log_artifacts(self._run_id, str(path), artifact_path)
        elif path.is_file():
            client.log_artifact(self._run_id, str(path), artifact_path)
        else:
            warnings.warn(
                f"MLFlowLogger(log_model={self._log_model!r}) did not log checkpoint {str(path)!r}: it is gone. "
                "Keep checkpoints until the run ends, or use log_model='all' to log each one when it is saved.",
                UserWarning,
                stacklevel=2,
            )

    @hookimpl
    def fabric_on_launch(self) -> None:
        # Open the run now: a tracking store that cannot be used fails before training starts.
        if rank_zero_only.rank == 0:  # type: ignore[attr-defined]
            _ = self.experiment

    # -- the end ------------------------------------------------------------------------------

    @rank_zero_only
    def save(self) -> None:
        """Wait until everything logged asynchronously (``synchronous=False``) has been stored."""
        pending, self._pending = self._pending, []
        for operation in pending:
            operation.wait()

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        """End the run with ``status``: ``"success"`` sets FINISHED, ``"failed"`` FAILED, ``"killed"`` KILLED.

        Waits for asynchronous writes, and with ``log_model=True`` logs the checkpoints saved
        during the run first. Does nothing when the logger neither opened the run nor wrote to
        it since the last finalize (reading ``run_id`` or ``experiment`` does not count), so a
        second finalize keeps the first status.
        """
        if status not in STATUSES:
            raise ValueError(
                f"MLFlowLogger.finalize(status={status!r}): expected one of {sorted(STATUSES)} "
                "('success' and 'failed' are what Fabric passes)."
            )
        if self._client is None or not self._active:
            return
        try:
            self.save()
            checkpoints, self._checkpoints = list(self._checkpoints), {}
            for path in checkpoints:
                self._log_checkpoint(path)
        finally:
            assert self._run_id is not None
            self._client.set_terminated(self._run_id, STATUSES[status])
            self._active = False

    def __getstate__(self) -> dict[str, Any]:
        # A copy sent to another process (``ddp_spawn``) opens its own client there, on the same run.
        state = self.__dict__.copy()
        state["_client"] = None
        state["_pending"] = []
        state["_active"] = False
        state["_waits_at_shutdown"] = False
        return state

    def __repr__(self) -> str:
        return (
            f"MLFlowLogger(experiment_name={self._experiment_name!r}, tracking_uri={self._tracking_uri!r}, "
            f"run_id={self._run_id!r})"
        )


def _max_param_length() -> int:
    """The longest parameter value the installed MLflow accepts."""
    try:
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH
    except ImportError:
        return DEFAULT_PARAM_LENGTH
    return int(MAX_PARAM_VAL_LENGTH)
