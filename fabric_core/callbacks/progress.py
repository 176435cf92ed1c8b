"""A progress bar for training loops: step, metrics, it/s and ETA, on global rank 0 only.

With tqdm installed and a terminal on the other end, it draws a tqdm bar. Otherwise (no
tqdm, or output to a file, a pipe, a CI log) it prints plain lines without carriage
returns, every ``refresh_rate`` steps and at the last step::

    step 20/100  loss=0.4321  lr=0.001  5.12 it/s  ETA 0:00:15

A loop drives it through ``fabric.call`` (the names are this callback's, see
docs/guide/callbacks.md)::

    fabric.call("on_train_start", fabric=fabric, total=max_steps, start_step=step)
    fabric.call("on_train_batch_end", fabric=fabric, step=step, total=max_steps, metrics={"loss": loss})
    fabric.call("on_validation_end", fabric=fabric, step=step, metrics={"val_loss": val_loss})
    fabric.call("on_train_end", fabric=fabric)

``step`` counts optimizer steps done so far (1 after the first).
"""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from fabric_core.callbacks._values import format_metrics
from fabric_core.utilities.rank_zero import rank_zero_only

if TYPE_CHECKING:
    from fabric_core.fabric import Fabric

__all__ = ["ProgressBar"]

#: Plain lines are printed every this many steps unless ``refresh_rate`` says otherwise.
PLAIN_REFRESH_RATE = 10


class ProgressBar:
    """Shows training progress on global rank 0; silent on every other rank.

    :param refresh_rate: redraw every this many steps (default: every step for a tqdm bar,
        every 10 steps for plain lines); the last step is always shown.
    :param use_tqdm: ``None`` uses tqdm when it is installed and the output is a terminal;
        ``False`` always prints plain lines; ``True`` requires tqdm (an error if it is missing).
    :param file: where to write; ``None`` means ``sys.stdout`` at the time of writing.
    """

    def __init__(
        self, refresh_rate: int | None = None, use_tqdm: bool | None = None, file: TextIO | None = None
    ) -> None:
        if refresh_rate is not None and refresh_rate < 1:
            raise ValueError(
                f"ProgressBar(refresh_rate={refresh_rate}): the bar is redrawn every refresh_rate steps, so it "
                "must be 1 or more."
            )
        self.refresh_rate = refresh_rate
        self.use_tqdm = use_tqdm
        self._file = file
        self._bar: Any = None  # the tqdm bar, once drawn
        self._plain: bool | None = None  # decided on the first draw
        self._start_time: float | None = None
        self._start_step = 0
        self._total: int | None = None
        self._validation: dict[str, str] = {}

    # -- the methods a loop calls through fabric.call ---------------------------------------------

    def on_train_start(self, fabric: Fabric | None = None, total: int | None = None, start_step: int = 0) -> None:
        """Training starts (or resumes) at ``start_step`` of ``total`` optimizer steps (``None``: unknown)."""
        if not _is_global_zero(fabric):
            return
        self._close()
        self._start_time = time.monotonic()
        self._start_step = start_step
        self._total = total
        self._validation = {}

    def on_train_batch_end(
        self,
        fabric: Fabric | None = None,
        step: int = 0,
        total: int | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> None:
        """Optimizer step ``step`` (1-based) is done; ``metrics`` (the loss, ...) are shown next to it."""
        if not _is_global_zero(fabric):
            return
        if self._start_time is None:  # no on_train_start: this step is the baseline of the rate
            self._start_time = time.monotonic()
            self._start_step = step
        if total is not None:
            self._total = total
        last = self._total is not None and step >= self._total
        if self._use_plain():
            if step % self._refresh_rate() == 0 or last:
                self._write(self._plain_line(step, metrics))
            return
        self._draw(step, metrics, refresh=step % self._refresh_rate() == 0 or last)

    def on_validation_end(
        self, fabric: Fabric | None = None, step: int = 0, metrics: Mapping[str, Any] | None = None
    ) -> None:
        """Validation ran after step ``step``; its ``metrics`` are printed (and kept on the tqdm bar)."""
        if not _is_global_zero(fabric):
            return
        self._validation = format_metrics(metrics)
        text = "  ".join(f"{name}={value}" for name, value in self._validation.items())
        line = f"validation at step {step}: {text}" if text else f"validation at step {step}"
        if self._bar is not None:
            self._bar.write(line, file=self._stream())
        else:
            self._write(line)

    def on_train_end(self, fabric: Fabric | None = None) -> None:
        """Training is over: the tqdm bar is closed (plain lines need nothing)."""
        if not _is_global_zero(fabric):
            return
        self._close()
        self._start_time = None

    # -- drawing -----------------------------------------------------------------------------

    def _stream(self) -> TextIO:
        return self._file if self._file is not None else sys.stdout

    def _use_plain(self) -> bool:
        if self._plain is None:
            self._plain = _load_tqdm(self.use_tqdm) is None or (
                self.use_tqdm is None and not _is_terminal(self._stream())
            )
        return self._plain

    def _refresh_rate(self) -> int:
        if self.refresh_rate is not None:
            return self.refresh_rate
        return PLAIN_REFRESH_RATE if self._use_plain() else 1

    def _write(self, line: str) -> None:
        stream = self._stream()
        stream.write(line + "\n")
        stream.flush()

    def _plain_line(self, step: int, metrics: Mapping[str, Any] | None) -> str:
        parts = [f"step {step}/{self._total}" if self._total is not None else f"step {step}"]
        parts += [f"{name}={value}" for name, value in format_metrics(metrics).items()]
        rate = self._rate(step)
        if rate is not None:
            parts.append(f"{rate:.3g} it/s")
            if self._total is not None and rate > 0:
                parts.append(f"ETA {datetime.timedelta(seconds=round(max(self._total - step, 0) / rate))}")
        return "  ".join(parts)

    def _rate(self, step: int) -> float | None:
        assert self._start_time is not None
        elapsed = time.monotonic() - self._start_time
        done = step - self._start_step
        if done <= 0 or elapsed <= 0:
            return None
        return done / elapsed

    def _draw(self, step: int, metrics: Mapping[str, Any] | None, refresh: bool) -> None:
        if self._bar is None:
            tqdm = _load_tqdm(self.use_tqdm)
            assert tqdm is not None
            self._bar = tqdm(
                total=self._total,
                initial=self._start_step,
                desc="train",
                unit="step",
                file=self._stream(),
                dynamic_ncols=True,
                leave=True,
            )
        if self._total is not None and self._bar.total != self._total:
            self._bar.total = self._total
        if refresh:
            self._bar.set_postfix({**format_metrics(metrics), **self._validation}, refresh=False)
        self._bar.update(step - self._bar.n)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _is_global_zero(fabric: Fabric | None) -> bool:
    if fabric is not None:
        return fabric.is_global_zero
    return bool(rank_zero_only.rank == 0)  # type: ignore[attr-defined]


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


def _load_tqdm(use_tqdm: bool | None) -> Any:
    """tqdm's bar class, or ``None`` when it is not wanted or not installed."""
    if use_tqdm is False:
        return None
    try:
        from tqdm import tqdm
    except ImportError as err:
        if use_tqdm:
            raise ImportError(
                "ProgressBar(use_tqdm=True) needs tqdm, which is not installed: pip install tqdm, or leave "
                "use_tqdm at None to print plain lines without it."
            ) from err
        return None
    return tqdm
