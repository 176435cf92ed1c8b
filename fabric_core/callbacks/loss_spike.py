"""Catching a training run whose loss suddenly jumps or stops being a number.

A loss above ``threshold`` times the median of the last ``window`` losses, or a loss that
is NaN or infinite, warns with :class:`LossSpikeWarning` (``mode="warn"``) or raises
:class:`LossSpikeError` (``mode="raise"``). The median, not the mean, so one earlier spike
does not hide the next. A spike is not added to the window: a burst of them would
otherwise become the baseline and stop being reported.

A loop passes each step's loss through ``fabric.call``::

    fabric.call("on_train_batch_end", step=step, loss=loss)

or calls :meth:`LossSpikeDetector.check` itself. Every rank checks the loss it is given.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections import deque
from typing import Any, Literal

from fabric_core.callbacks._values import as_number

__all__ = ["LossSpikeDetector", "LossSpikeError", "LossSpikeWarning"]

_ADVICE = (
    "Lower the learning rate or clip gradients, look at the batch of that step, or raise "
    "LossSpikeDetector(threshold=...) if such jumps are expected."
)


class LossSpikeWarning(UserWarning):
    """A loss spike, reported by :class:`LossSpikeDetector` with ``mode="warn"``."""


class LossSpikeError(RuntimeError):
    """A loss spike, reported by :class:`LossSpikeDetector` with ``mode="raise"``."""


class LossSpikeDetector:
    """Warns or raises when the loss is far above its recent median, or not finite.

    :param threshold: how many times the median a loss may reach before it is a spike (> 1).
    :param window: how many recent losses the median is taken over.
    :param mode: ``"warn"`` (a :class:`LossSpikeWarning`) or ``"raise"`` (a :class:`LossSpikeError`).
    :param min_history: losses to see before comparing (at most ``window``); a non-finite
        loss is reported from the first step.
    """

    def __init__(
        self,
        threshold: float = 5.0,
        window: int = 100,
        mode: Literal["warn", "raise"] = "warn",
        min_history: int = 10,
    ) -> None:
        if not threshold > 1:
            raise ValueError(
                f"LossSpikeDetector(threshold={threshold}): a spike is a loss above threshold x the median, so "
                "the threshold must be greater than 1 (5 is a common choice)."
            )
        if window < 1:
            raise ValueError(f"LossSpikeDetector(window={window}): the median needs a window of 1 loss or more.")
        if mode not in ("warn", "raise"):
            raise ValueError(f"LossSpikeDetector(mode={mode!r}): choose 'warn' or 'raise'.")
        if not 1 <= min_history <= window:
            raise ValueError(
                f"LossSpikeDetector(min_history={min_history}, window={window}): min_history must be between 1 "
                "and the window."
            )
        self.threshold = threshold
        self.window = window
        self.mode = mode
        self.min_history = min_history
        self._history: deque[float] = deque(maxlen=window)

    def on_train_batch_end(self, step: int, loss: Any = None) -> None:
        """Check the ``loss`` of optimizer step ``step`` (nothing happens without a loss)."""
        if loss is not None:
            self.check(loss, step)

    def check(self, loss: Any, step: int) -> bool:
        """Check one loss (a number or a one-element tensor); ``True`` when it was a spike (mode ``"warn"``)."""
        value = as_number(loss)
        if value is None:
            raise TypeError(
                f"LossSpikeDetector got a loss of type {type(loss).__name__} at step {step}; pass a number or a "
                "one-element tensor."
            )
        value = float(value)
        message = self._problem(value, step)
        if message is None:
            self._history.append(value)
            return False
        if self.mode == "raise":
            raise LossSpikeError(message)
        warnings.warn(message, LossSpikeWarning, stacklevel=2)
        return True

    def _problem(self, loss: float, step: int) -> str | None:
        seen = len(self._history)
        median = statistics.median(self._history) if seen else None
        if not math.isfinite(loss):
            compared = (
                f"the median of the last {seen} losses is {median:.6g}" if median is not None else "no loss before"
            )
            return f"Non-finite loss at step {step}: the loss is {loss} ({compared}). {_ADVICE}"
        if median is None or seen < self.min_history or loss <= self.threshold * median:
            return None
        return (
            f"Loss spike at step {step}: the loss {loss:.6g} is above {self.threshold:g} x the median {median:.6g} "
            f"of the last {seen} losses. {_ADVICE}"
        )

    def state_dict(self) -> dict[str, Any]:
        """The recent losses, so that a resumed run keeps comparing against them."""
        return {"history": list(self._history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self._history = deque((float(value) for value in state["history"]), maxlen=self.window)
