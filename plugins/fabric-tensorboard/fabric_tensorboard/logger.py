"""Metrics, hyperparameters and model graphs as TensorBoard event files (Lightning's ``TensorBoardLogger``)."""

from __future__ import annotations

import importlib.util
import os
import warnings
import weakref
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from fabric_core.loggers import Logger
from fabric_core.loggers.logger import flatten_params, next_version
from fabric_core.utilities.apply_func import move_data_to_device
from fabric_core.utilities.rank_zero import rank_zero_only
from fabric_core.wrappers import FabricModule

from fabric_tensorboard._hparams import experiment_summaries, sanitize_params, session_end_summary

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


class TensorBoardLogger(Logger):
    """Log to ``root_dir/name/version_N`` in TensorBoard's format, on global rank 0.

    The writer is a :class:`torch.utils.tensorboard.SummaryWriter`, created on first use
    (``tensorboard`` is imported then, not before). View the logs with
    ``tensorboard --logdir root_dir``.

    :param root_dir: the folder for all experiments.
    :param name: the experiment's folder under ``root_dir`` (``""`` or ``None`` for none).
    :param version: an int (folder ``version_N``) or a folder name used as it is; when
        omitted, the next free number after the existing ``version_N`` folders.
    :param default_hp_metric: when :meth:`log_hyperparams` gets no metrics, log a placeholder
        ``hp_metric`` of -1 at step 0, so that TensorBoard's HPARAMS tab has a metric column.
    :param prefix: prepended to every metric name, joined with ``-``.
    :param sub_dir: a folder under the version folder to write into (``version_0/train``).
    :param kwargs: passed on to ``SummaryWriter`` (``max_queue``, ``flush_secs``,
        ``filename_suffix``, ``purge_step``, ...).
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        root_dir: str | Path,
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        default_hp_metric: bool = True,
        prefix: str = "",
        sub_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        if version is not None and (isinstance(version, bool) or not isinstance(version, (int, str))):
            raise TypeError(f"TensorBoardLogger(version={version!r}): expected an int, a folder name or None.")
        _require_tensorboard()
        if "log_dir" in kwargs or "logdir" in kwargs:
            raise TypeError(
                "TensorBoardLogger got a SummaryWriter log_dir; the folder is root_dir/name/version/sub_dir. "
                "Pass root_dir=, name=, version= and sub_dir= instead."
            )
        self._root_dir = os.fspath(root_dir)
        self._name = name or ""
        self._version = version
        self._sub_dir = None if sub_dir is None else os.fspath(sub_dir)
        self._default_hp_metric = default_hp_metric
        self._prefix = prefix
        self._kwargs = kwargs
        self._experiment: SummaryWriter | None = None
        self._open = False  # whether something was written since the writer was last closed
        self._steps_logged = 0
        self._hparams_logged = False

    # -- where --------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int | str:
        """The version given, or the next free ``version_N`` number (decided on first use)."""
        if self._version is None:
            self._version = self._next_version()
        return self._version

    @property
    def root_dir(self) -> str:
        return self._root_dir

    @property
    def sub_dir(self) -> str | None:
        return self._sub_dir

    @property
    def log_dir(self) -> str:
        """``root_dir/name/version_N[/sub_dir]``, with ``~`` and ``$VARIABLES`` expanded."""
        version = self.version
        folder = version if isinstance(version, str) else f"version_{version}"
        path = os.path.join(self._root_dir, self._name, folder)
        if self._sub_dir is not None:
            path = os.path.join(path, self._sub_dir)
        return os.path.expanduser(os.path.expandvars(path))

    def _next_version(self) -> int:
        return next_version(os.path.expanduser(os.path.expandvars(os.path.join(self._root_dir, self._name))))

    # -- the writer ---------------------------------------------------------------------------

    @property
    def experiment(self) -> SummaryWriter:
        """The ``SummaryWriter``, for anything TensorBoard offers (``logger.experiment.add_histogram(...)``).

        On ranks other than global rank 0 this is a stand-in whose methods do nothing, so
        code that writes through it need not check the rank.
        """
        if rank_zero_only.rank != 0:  # type: ignore[attr-defined]
            return _NoExperiment()  # type: ignore[return-value]
        if self._experiment is None:
            SummaryWriter = _import_summary_writer()
            self._experiment = SummaryWriter(log_dir=self.log_dir, **self._kwargs)
            # A safety net for a logger used without Fabric, or a Fabric never torn down:
            # events still queued are written when the logger is collected or Python exits.
            weakref.finalize(self, self._experiment.close)
        self._open = True
        return self._experiment

    # -- writing ------------------------------------------------------------------------------

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Write each metric as a scalar at ``step``.

        Values are numbers or one-element tensors. A dict value becomes one chart with a
        line per key (``SummaryWriter.add_scalars``). Without a ``step``, the step is the
        number of earlier :meth:`log_metrics` calls of this logger.
        """
        if step is None:
            step = self._steps_logged
        self._steps_logged += 1
        self._write_scalars(metrics, step)

    def _write_scalars(self, metrics: Mapping[str, Any], step: int) -> None:
        writer = self.experiment
        for key, value in metrics.items():
            tag = self._tag(key)
            if isinstance(value, Mapping):
                writer.add_scalars(tag, {str(k): _scalar(f"{tag}/{k}", v) for k, v in value.items()}, step)
            else:
                writer.add_scalar(tag, _scalar(tag, value), step)

    def _tag(self, key: Any) -> str:
        """A metric's name in TensorBoard: ``prefix-key``, or ``key`` without a prefix."""
        return f"{self._prefix}{self.LOGGER_JOIN_CHAR}{key}" if self._prefix else str(key)

    @rank_zero_only
    def log_hyperparams(  # type: ignore[override]
        self,
        params: Mapping[str, Any] | Namespace | None,
        metrics: Mapping[str, Any] | float | torch.Tensor | None = None,
    ) -> None:
        """Record hyperparameters for TensorBoard's HPARAMS tab, with the metrics to show beside them.

        Nested dicts are flattened (``{"optim": {"lr": 0.1}}`` to ``optim/lr``); values other
        than numbers, strings and booleans are written as their ``str``. ``metrics`` (a dict,
        or one value for ``hp_metric``) are logged as scalars at step 0, and become the
        HPARAMS tab's metric columns, which show each metric's latest value. Without them,
        ``hp_metric`` is -1 when ``default_hp_metric`` is on.

        TensorBoard reads only the first hyperparameters written to a run folder, so call this
        once, with all hyperparameters and the names of the metrics to show beside them. A
        second call still logs its metrics as scalars, and warns that the rest is not shown.
        """
        values = sanitize_params(flatten_params(params) if params is not None else {})
        if metrics is None:
            metrics = {"hp_metric": -1} if self._default_hp_metric else {}
        elif not isinstance(metrics, Mapping):
            metrics = {"hp_metric": metrics}
        if metrics:
            self._write_scalars(metrics, 0)
        if self._hparams_logged:
            warnings.warn(
                f"TensorBoardLogger.log_hyperparams was called again for {self.log_dir}, and TensorBoard shows only "
                f"the first hyperparameters written to a run: {sorted(values)} from this call will not appear in its "
                "HPARAMS tab (the metrics were logged as scalars). Log all hyperparameters in one call, naming the "
                "metrics to show beside them: log_hyperparams(params, {'val/acc': 0.0}).",
                UserWarning,
                stacklevel=3,
            )
        tags = [self._tag(key) for key in metrics]
        file_writer = _file_writer(self.experiment)
        for summary in experiment_summaries(values, tags):
            file_writer.add_summary(summary)
        self._hparams_logged = True

    @rank_zero_only
    def log_graph(self, model: torch.nn.Module, input_array: Any = None) -> None:
        """Trace ``model`` with ``input_array`` (or ``model.example_input_array``) and write its graph.

        A model set up by Fabric is traced through the user's own module. Without an input,
        or with one that cannot be traced (not a tensor, tuple or list), nothing is written
        and a ``UserWarning`` says why.
        """
        module = model.module if isinstance(model, FabricModule) else model
        if input_array is None:
            input_array = getattr(module, "example_input_array", None)
        if input_array is None:
            warnings.warn(
                f"TensorBoardLogger.log_graph({type(module).__name__}) wrote no graph: it needs an input to trace "
                "the model with, and got none. Pass log_graph(model, input_array) or set model.example_input_array.",
                UserWarning,
                stacklevel=3,
            )
            return
        if not isinstance(input_array, (torch.Tensor, tuple, list)):
            warnings.warn(
                f"TensorBoardLogger.log_graph({type(module).__name__}) wrote no graph: the input is a "
                f"{type(input_array).__name__}, which TensorBoard cannot trace. Pass a tensor, or a tuple of the "
                "positional arguments of the model's forward().",
                UserWarning,
                stacklevel=3,
            )
            return
        parameter = next(module.parameters(), None)
        if parameter is not None:
            input_array = move_data_to_device(input_array, parameter.device)
        writer = self.experiment
        with warnings.catch_warnings():
            # SummaryWriter.add_graph traces with torch.jit.trace, which torch deprecates; the
            # warning names a call the user did not make and cannot change.
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace", category=DeprecationWarning)
            writer.add_graph(module, input_array)

    @rank_zero_only
    def save(self) -> None:
        """Write the queued events to disk."""
        if self._experiment is not None and self._open:
            self._experiment.flush()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Record the run's ``status`` (with hyperparameters, for the HPARAMS tab), write everything and close."""
        if self._experiment is None or not self._open:
            return
        if self._hparams_logged:
            _file_writer(self._experiment).add_summary(session_end_summary(status))
        self._experiment.flush()
        self._experiment.close()
        self._open = False

    def __getstate__(self) -> dict[str, Any]:
        # A copy sent to another process (``ddp_spawn``) makes its own writer there.
        state = self.__dict__.copy()
        state["_experiment"] = None
        state["_open"] = False
        return state

    def __repr__(self) -> str:
        return f"TensorBoardLogger(root_dir={self._root_dir!r}, name={self._name!r}, version={self._version!r})"


def _require_tensorboard() -> None:
    """Raise ``ModuleNotFoundError`` naming the fix when the tensorboard package is missing (without importing it)."""
    try:
        found = importlib.util.find_spec("tensorboard") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ModuleNotFoundError(
            "TensorBoardLogger writes with the tensorboard package, which is not installed. "
            "pip install tensorboard (or reinstall fabric-tensorboard, which depends on it).",
            name="tensorboard",
        )


def _import_summary_writer() -> type[SummaryWriter]:
    """``torch.utils.tensorboard.SummaryWriter``, or an ``ImportError`` that names the fix, the cause chained."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as err:
        raise ImportError(
            f"TensorBoardLogger could not import torch.utils.tensorboard ({type(err).__name__}: {err}). "
            "pip install --force-reinstall tensorboard, or reinstall fabric-tensorboard."
        ) from err
    return SummaryWriter


def _file_writer(writer: SummaryWriter) -> Any:
    """The writer's own event file (``add_scalars`` writes others beside it), reopened if it was closed."""
    return writer._get_file_writer()  # type: ignore[no-untyped-call]


def _scalar(tag: str, value: Any) -> float:
    """``value`` as a number TensorBoard can plot, or a ``ValueError`` that names the metric."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"TensorBoardLogger cannot log metric {tag!r}: it is a tensor of {value.numel()} elements "
                f"(shape {tuple(value.shape)}), and a scalar is one number. Reduce it first, e.g. with .mean()."
            )
        value = value.item()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (int, float)):
        return float(value)
    raise ValueError(
        f"TensorBoardLogger cannot log metric {tag!r}: its value {value!r} is a {type(value).__name__}, and "
        "TensorBoard plots numbers. Log a number, a one-element tensor, or a dict of numbers (one chart, a line each)."
    )


class _NoExperiment:
    """``experiment`` on ranks other than 0: any method call or item access does nothing."""

    def _nothing(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return self._nothing

    def __getitem__(self, key: Any) -> _NoExperiment:
        return self

    def __setitem__(self, key: Any, value: Any) -> None:
        pass
