"""The built-in loss-spike detector: messages verbatim, warn and raise, its window."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from fabric_core import Fabric
from fabric_core.callbacks import LossSpikeDetector, LossSpikeError, LossSpikeWarning

ADVICE = (
    "Lower the learning rate or clip gradients, look at the batch of that step, or raise "
    "LossSpikeDetector(threshold=...) if such jumps are expected."
)


def _feed(fabric: Fabric, losses: list[float], first_step: int = 1) -> None:
    for step, loss in enumerate(losses, start=first_step):
        fabric.call("on_train_batch_end", fabric=fabric, step=step, loss=torch.tensor(loss), metrics={})


def test_a_spike_warns_naming_step_loss_and_median() -> None:
    fabric = Fabric(accelerator="cpu", callbacks=[LossSpikeDetector(threshold=3, window=4, min_history=3)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _feed(fabric, [1.0, 2.0, 1.5, 4.5])  # 4.5 == 3 x 1.5: not above
    with pytest.warns(LossSpikeWarning) as record:
        _feed(fabric, [6.5], first_step=5)  # median of [1, 2, 1.5, 4.5] is 1.75; 6.5 > 5.25
    assert len(record) == 1
    assert str(record[0].message) == (
        f"Loss spike at step 5: the loss 6.5 is above 3 x the median 1.75 of the last 4 losses. {ADVICE}"
    )


def test_raise_mode_raises_the_same_message() -> None:
    detector = LossSpikeDetector(threshold=2, window=3, mode="raise", min_history=3)
    for step, loss in enumerate([1.0, 1.0, 1.0], start=1):
        assert detector.check(loss, step) is False
    with pytest.raises(LossSpikeError) as info:
        detector.check(2.5, 4)
    assert (
        str(info.value)
        == f"Loss spike at step 4: the loss 2.5 is above 2 x the median 1 of the last 3 losses. {ADVICE}"
    )


def test_non_finite_losses_are_reported_from_the_first_step() -> None:
    detector = LossSpikeDetector(mode="raise")
    with pytest.raises(LossSpikeError) as info:
        detector.check(torch.tensor(float("nan")), 1)
    assert str(info.value) == f"Non-finite loss at step 1: the loss is nan (no loss before). {ADVICE}"
    detector.check(1.0, 2)
    detector.check(3.0, 3)
    with pytest.raises(LossSpikeError) as info:
        detector.check(math.inf, 4)
    assert (
        str(info.value)
        == f"Non-finite loss at step 4: the loss is inf (the median of the last 2 losses is 2). {ADVICE}"
    )


def test_no_comparison_before_min_history() -> None:
    detector = LossSpikeDetector(threshold=2, window=10, min_history=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert detector.check(1.0, 1) is False
        assert detector.check(100.0, 2) is False  # only one loss seen before: not compared yet


def test_spikes_stay_out_of_the_window() -> None:
    detector = LossSpikeDetector(threshold=2, window=3, min_history=3)
    for step, loss in enumerate([1.0, 1.0, 1.0], start=1):
        detector.check(loss, step)
    with pytest.warns(LossSpikeWarning):
        assert detector.check(10.0, 4) is True
    with pytest.warns(LossSpikeWarning, match="the median 1 of the last 3 losses"):
        assert detector.check(10.0, 5) is True  # still compared with the healthy losses
    assert detector.state_dict() == {"history": [1.0, 1.0, 1.0]}


def test_the_window_slides_and_state_round_trips() -> None:
    detector = LossSpikeDetector(threshold=2, window=2, min_history=1)
    for step, loss in enumerate([10.0, 1.0, 1.2], start=1):
        detector.check(loss, step)
    assert detector.state_dict() == {"history": [1.0, 1.2]}
    restored = LossSpikeDetector(threshold=2, window=2, min_history=1)
    restored.load_state_dict(detector.state_dict())
    with pytest.warns(LossSpikeWarning, match=r"the loss 3 is above 2 x the median 1\.1 of the last 2 losses"):
        restored.check(3.0, 4)


def test_selected_by_name_and_silent_without_a_loss() -> None:
    fabric = Fabric(accelerator="cpu", callbacks=["loss_spike"])
    (detector,) = fabric.callbacks
    assert isinstance(detector, LossSpikeDetector)
    assert (detector.threshold, detector.window, detector.mode) == (5.0, 100, "warn")
    fabric.call("on_train_batch_end", fabric=fabric, step=1, metrics={"loss": 1.0})  # no loss= argument
    assert detector.state_dict() == {"history": []}


def test_a_loss_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(TypeError, match=r"got a loss of type Tensor at step 3; pass a number or a one-element"):
        LossSpikeDetector().check(torch.ones(2), 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 1.0}, r"LossSpikeDetector\(threshold=1.0\): .* must be greater than 1"),
        ({"window": 0, "min_history": 1}, r"LossSpikeDetector\(window=0\): the median needs a window of 1 loss"),
        ({"mode": "stop"}, r"LossSpikeDetector\(mode='stop'\): choose 'warn' or 'raise'"),
        ({"window": 5, "min_history": 6}, r"LossSpikeDetector\(min_history=6, window=5\): min_history must be"),
    ],
)
def test_bad_arguments_say_what_would_work(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LossSpikeDetector(**kwargs)  # type: ignore[arg-type]
