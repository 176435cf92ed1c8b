"""Metrics, hyperparameters, media and checkpoints in a Weights & Biases run (Lightning's ``WandbLogger``)."""

from __future__ import annotations

import atexit
import os
import sys
import warnings
from argparse import Namespace
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fabric_core.hookspecs import hookimpl
from fabric_core.loggers import Logger
from fabric_core.utilities.rank_zero import rank_zero_only

from fabric_wandb._backend import NoRun, check_init_arguments, import_wandb, require_wandb
from fabric_wandb._params import (
    check_artifact_name,
    check_experiment,
    check_log_model,
    check_mode,
    check_run_id,
    config_values,
    one_of,
)

if TYPE_CHECKING:
    from wandb.sdk.wandb_run import Run

#: The metric that holds the ``step`` of ``log_metrics``; every other metric is plotted against it.
STEP_METRIC = "trainer/global_step"
#: The project when neither ``project=`` nor ``$WANDB_PROJECT`` names one (Lightning's default).
DEFAULT_PROJECT = "lightning_logs"


class WandbLogger(Logger):
    """Log to a Weights & Biases run, on global rank 0.

    The run is started with ``wandb.init`` the first time something is written (``wandb`` is
    imported then, not before), and finished by :meth:`finalize` when Fabric tears down,
    with the run's status as its exit code. Ranks other than 0 start nothing.

    :param name: the run's display name (W&B makes one up when omitted).
    :param save_dir: the folder W&B writes its ``wandb/`` run folders into; ``$WANDB_DIR``,
        or the working directory, when omitted. Made absolute when the logger is made.
    :param version: the run id, to resume a run (``resume="allow"``); the same as ``id``.
    :param offline: write the run to disk only (``mode="offline"``); ``wandb sync`` uploads it later.
    :param dir: the same as ``save_dir``.
    :param id: the same as ``version``.
    :param anonymous: ``True`` passes ``anonymous="allow"`` to ``wandb.init``.
    :param project: the W&B project; ``$WANDB_PROJECT``, or ``"lightning_logs"``, when omitted.
    :param log_model: upload checkpoints written by ``fabric.save`` as ``model`` artifacts:
        ``True`` when the run ends successfully (the last content of each path), ``"all"``
        right after every save, ``False`` never.
    :param experiment: a run you started yourself with ``wandb.init``, to log into instead.
        It is not finished by :meth:`finalize`: it is yours.
    :param prefix: prepended to every metric name, joined with ``-``.
    :param checkpoint_name: the artifact name of the checkpoints (``model-<run id>`` when omitted).
    :param kwargs: passed on to ``wandb.init`` (``entity``, ``group``, ``tags``, ``config``,
        ``mode``, ``settings``, ``resume``, ...).
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        name: str | None = None,
        save_dir: str | os.PathLike[str] | None = None,
        version: str | None = None,
        offline: bool = False,
        dir: str | os.PathLike[str] | None = None,
        id: str | None = None,
        anonymous: bool | None = None,
        project: str | None = None,
        log_model: Literal["all"] | bool = False,
        experiment: Run | None = None,
        prefix: str = "",
        checkpoint_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        if experiment is None:
            require_wandb()
        else:
            given: dict[str, Any] = {"name": name, "save_dir": save_dir, "version": version, "dir": dir, "id": id}
            given.update(project=project, offline=offline or None, anonymous=anonymous, **kwargs)
            check_experiment(experiment, sorted(key for key, value in given.items() if value is not None))
        run_id = check_run_id(one_of("version", version, "id", id))
        folder = one_of("save_dir", save_dir, "dir", dir)
        mode = check_mode(offline, kwargs.pop("mode", None))
        self._log_model = check_log_model(log_model)
        self._checkpoint_name = check_artifact_name(checkpoint_name)
        folder = os.fspath(folder) if folder is not None else os.environ.get("WANDB_DIR") or "."
        # Absolute now: W&B's service process, started once per process, would read a relative
        # folder from its own working directory, and lose the run file after an os.chdir.
        self._save_dir = os.path.abspath(os.path.expanduser(folder))
        self._project = project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
        self._name = name
        self._id = run_id
        self._prefix = prefix
        self._init_args: dict[str, Any] = {
            "name": name,
            "project": self._project,
            "dir": self._save_dir,
            "id": run_id,
            "resume": "allow",  # as Lightning: a given id continues that run, or starts it
        }
        if anonymous:
            self._init_args["anonymous"] = "allow"
        if mode is not None:
            self._init_args["mode"] = mode
        self._init_args.update(kwargs)
        self._experiment: Run | None = experiment
        self._owns_run = False  # whether this logger started the run (and so finishes it)
        self._axes_defined = False
        self._finished = False
        self._pending_checkpoints: dict[Path, None] = {}  # log_model=True: paths saved, in order, each once

    # -- where --------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The W&B project, as in Lightning (the run's display name is ``name=`` / ``experiment.name``)."""
        return self._project

    @property
    def version(self) -> str | None:
        """The run id: the run's once it started, else the ``version``/``id`` given (or ``None``)."""
        if self._experiment is not None and rank_zero_only.rank == 0:  # type: ignore[attr-defined]
            return str(self._experiment.id)
        return self._id

    @property
    def save_dir(self) -> str:
        """The folder W&B writes its ``wandb/`` run folders into."""
        return self._save_dir

    @property
    def root_dir(self) -> str:
        return self._save_dir

    @property
    def log_dir(self) -> str | None:
        """The run's own folder (``save_dir/wandb/[offline-]run-<time>-<id>``) once it started, else ``None``."""
        settings = getattr(self._experiment, "settings", None)
        folder = getattr(settings, "sync_dir", None)
        return str(folder) if folder else None

    # -- the run ------------------------------------------------------------------------------

    @property
    def experiment(self) -> Run:
        """The W&B run, for anything W&B offers (``logger.experiment.watch(model)``, ``.alert(...)``).

        Started on first use, on global rank 0. On other ranks this is a stand-in whose
        methods do nothing, so code that writes through it need not check the rank.
        """
        if rank_zero_only.rank != 0:  # type: ignore[attr-defined]
            return NoRun()  # type: ignore[return-value]
        if self._finished:
            raise RuntimeError(
                f"WandbLogger: the W&B run {self.version} was finished when the run ended (finalize), and a finished "
                "run takes no more data. Make a new WandbLogger for a new run, or pass id= to resume this one."
            )
        if self._experiment is None:
            self._experiment = self._start_run()
        if not self._axes_defined:
            # Steps go into a metric of their own, so that they may go back or repeat (a
            # validation loop, a resumed run); W&B's own step must only grow.
            self._experiment.define_metric(STEP_METRIC)
            self._experiment.define_metric("*", step_metric=STEP_METRIC, step_sync=True)
            self._axes_defined = True
        return self._experiment

    def _start_run(self) -> Run:
        wandb = import_wandb()
        if wandb.run is not None:
            warnings.warn(
                f"WandbLogger logs into the W&B run already in progress in this process ({wandb.run.id}), and will not "
                "finish it. Call wandb.finish() first for a run of its own, or pass experiment=wandb.run to say so.",
                UserWarning,
                stacklevel=4,
            )
            return wandb.run  # type: ignore[no-any-return]
        check_init_arguments(wandb, self._init_args)
        Path(self._save_dir).mkdir(parents=True, exist_ok=True)
        run = wandb.init(**self._init_args)
        self._owns_run = True
        # Registered after wandb.init, so it runs before W&B's own exit handler (registered
        # when its service started) and finishes the run while the service still listens.
        atexit.register(self._finish_at_exit)
        return run  # type: ignore[no-any-return]

    def _finish_at_exit(self) -> None:
        # Python sets sys.last_value for an exception that ended the script, before exit handlers run.
        self.finalize("failed" if getattr(sys, "last_value", None) is not None else "success")

    # -- writing ------------------------------------------------------------------------------

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log ``metrics`` as one row of the run's history, with ``step`` as ``trainer/global_step``.

        Values are anything ``wandb.log`` takes: numbers, one-element tensors, ``wandb.Image``,
        ``wandb.Table``, histograms, nested dicts. Without a ``step``, the row keeps the last step.
        """
        row = {self._key(key): value for key, value in metrics.items()}
        if step is not None:
            row[STEP_METRIC] = step
        self.experiment.log(row)

    def _key(self, key: Any) -> str:
        return f"{self._prefix}{self.LOGGER_JOIN_CHAR}{key}" if self._prefix else str(key)

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace | None) -> None:  # type: ignore[override]
        """Add ``params`` to the run's config (a later value of a key replaces the earlier one).

        Namespaces and dataclasses become dicts, nesting is kept (W&B shows ``optimizer.lr``);
        tensors and NumPy values become numbers or lists; functions and classes their name.
        """
        if params is not None:
            self.experiment.config.update(config_values(params), allow_val_change=True)  # type: ignore[no-untyped-call]

    @rank_zero_only
    def log_table(
        self,
        key: str,
        columns: list[str] | None = None,
        data: list[list[Any]] | None = None,
        dataframe: Any = None,
        step: int | None = None,
    ) -> None:
        """Log a ``wandb.Table`` under ``key``: ``columns`` and rows of ``data``, or a pandas ``dataframe``."""
        wandb = import_wandb()
        self.log_metrics({key: wandb.Table(columns=columns, data=data, dataframe=dataframe)}, step)

    @rank_zero_only
    def log_text(
        self,
        key: str,
        columns: list[str] | None = None,
        data: list[list[str]] | None = None,
        dataframe: Any = None,
        step: int | None = None,
    ) -> None:
        """Log text as a table (:meth:`log_table`), as Lightning does."""
        self.log_table(key, columns, data, dataframe, step)

    @rank_zero_only
    def log_image(self, key: str, images: list[Any], step: int | None = None, **kwargs: list[Any]) -> None:
        """Log ``images`` (tensors, NumPy arrays, PIL images or file paths) under ``key``.

        Each keyword is a list with one entry per image, passed on to its ``wandb.Image``
        (``caption=["a", "b"]``, ``masks=[...]``, ``boxes=[...]``).
        """
        if not isinstance(images, list):
            raise TypeError(
                f"WandbLogger.log_image({key!r}, images=...): expected a list, got {type(images).__name__}."
            )
        for name, values in kwargs.items():
            if not isinstance(values, list) or len(values) != len(images):
                raise ValueError(
                    f"WandbLogger.log_image({key!r}, {name}=...): expected a list of {len(images)} entries, one per "
                    f"image, got {values!r}."
                )
        wandb = import_wandb()
        pictures = [
            wandb.Image(image, **{name: values[index] for name, values in kwargs.items()})
            for index, image in enumerate(images)
        ]
        self.log_metrics({key: pictures}, step)

    def save(self) -> None:
        """Nothing to do: ``wandb.log`` hands every row to W&B's service process at once, which writes it."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """End the run: upload pending checkpoints (``log_model=True``, on success), then finish it.

        ``"success"`` (or ``"finished"``) finishes with exit code 0, anything else (``"failed"``)
        with 1, which W&B shows as a failed run. A run passed as ``experiment=`` is left
        running. Calling it again, or with no run started, does nothing.
        """
        if self._experiment is None or self._finished:
            return
        succeeded = status in ("success", "finished")
        try:
            if succeeded and self._log_model is True:
                for path in list(self._pending_checkpoints):
                    self._upload_checkpoint(path)
                self._pending_checkpoints.clear()
        finally:
            if self._owns_run:
                atexit.unregister(self._finish_at_exit)
                self._experiment.finish(exit_code=0 if succeeded else 1)
                self._finished = True

    # -- checkpoints --------------------------------------------------------------------------

    @hookimpl(wrapper=True)
    def fabric_save_checkpoint(self, path: Path) -> Generator[None, bool, bool]:
        """Around every ``fabric.save``: once it has written ``path``, upload it or remember it (``log_model``)."""
        written = yield
        if self._log_model and rank_zero_only.rank == 0:  # type: ignore[attr-defined]
            self._checkpoint_written(Path(path))
        return written

    def _checkpoint_written(self, path: Path) -> None:
        if self._log_model == "all":
            self._upload_checkpoint(path)
        else:
            self._pending_checkpoints.pop(path, None)  # saved again: its last content, in its new place in line
            self._pending_checkpoints[path] = None

    def _upload_checkpoint(self, path: Path) -> None:
        """Log ``path`` (a file, or a sharded checkpoint's folder) as a new version of the run's model artifact."""
        if not path.exists():
            warnings.warn(
                f"WandbLogger(log_model={self._log_model!r}) did not upload the checkpoint {str(path)!r}: it is not "
                "there (deleted since, or written where global rank 0 cannot see it).",
                UserWarning,
                stacklevel=2,
            )
            return
        wandb = import_wandb()
        run = self.experiment
        artifact = wandb.Artifact(
            self._checkpoint_name or f"model-{run.id}", type="model", metadata={"original_filename": path.name}
        )
        if path.is_dir():
            artifact.add_dir(str(path), name=path.name)
        else:
            artifact.add_file(str(path), name=path.name)
        run.log_artifact(artifact, aliases=["latest"])

    # -- processes ----------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # A copy sent to another process (ddp_spawn) starts its own run there, on its rank 0.
        if self._experiment is not None and self._owns_run and not self._finished:
            warnings.warn(
                f"WandbLogger: a copy of this logger was sent to another process (ddp_spawn), where it starts a W&B "
                f"run of its own; the run {self._experiment.id} of this process is not continued there. Log only "
                "inside the function given to fabric.launch() to keep one run.",
                UserWarning,
                stacklevel=2,
            )
        state = self.__dict__.copy()
        state.update(_experiment=None, _owns_run=False, _axes_defined=False, _finished=False)
        return state

    def __repr__(self) -> str:
        return f"WandbLogger(project={self._project!r}, name={self._name!r}, version={self.version!r})"
