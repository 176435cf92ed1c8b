"""The built-in progress bar: plain lines off a terminal, tqdm on one, rank 0 only."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest
import torch

from fabric_core import Fabric
from fabric_core.callbacks import ProgressBar
from fabric_core.utilities.rank_zero import rank_zero_only
from tests.helpers.processes import run_script

RATE_AND_ETA = r"  [0-9.e+]+ it/s  ETA \d+:\d\d:\d\d"


class Terminal(io.StringIO):
    """A text stream that says it is a terminal, as tqdm's output would be in a shell."""

    def isatty(self) -> bool:
        return True


def _train(fabric: Fabric, steps: int, total: int | None = None) -> None:
    fabric.call("on_train_start", fabric=fabric, total=total, start_step=0)
    for step in range(1, steps + 1):
        loss = torch.tensor(1.0 / step)
        fabric.call("on_train_batch_end", fabric=fabric, step=step, total=total, metrics={"loss": loss, "lr": 0.001})
    fabric.call("on_validation_end", fabric=fabric, step=steps, metrics={"val_loss": torch.tensor(0.25)})
    fabric.call("on_train_end", fabric=fabric)


def test_plain_lines_when_stdout_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    fabric = Fabric(accelerator="cpu", callbacks=[ProgressBar(refresh_rate=1)])
    _train(fabric, steps=3, total=3)
    out = capsys.readouterr().out
    assert "\r" not in out
    lines = out.splitlines()
    assert len(lines) == 4
    assert re.fullmatch(r"step 1/3  loss=1  lr=0\.001" + RATE_AND_ETA, lines[0]), lines[0]
    assert re.fullmatch(r"step 2/3  loss=0\.5  lr=0\.001" + RATE_AND_ETA, lines[1]), lines[1]
    assert re.fullmatch(r"step 3/3  loss=0\.3333  lr=0\.001" + RATE_AND_ETA, lines[2]), lines[2]
    assert lines[2].endswith("ETA 0:00:00")
    assert lines[3] == "validation at step 3: val_loss=0.25"


def test_selected_by_name_prints_every_tenth_step_and_the_last(capsys: pytest.CaptureFixture[str]) -> None:
    fabric = Fabric(accelerator="cpu", callbacks=["progress_bar"])
    (bar,) = fabric.callbacks
    assert isinstance(bar, ProgressBar)
    _train(fabric, steps=25, total=25)
    steps = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert steps == ["10/25", "20/25", "25/25"]


def test_without_a_total_there_is_no_eta(capsys: pytest.CaptureFixture[str]) -> None:
    fabric = Fabric(accelerator="cpu", callbacks=[ProgressBar(refresh_rate=2)])
    _train(fabric, steps=4)
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"step 2  loss=0\.5  lr=0\.001  [0-9.e+]+ it/s", lines[0]), lines[0]
    assert re.fullmatch(r"step 4  loss=0\.25  lr=0\.001  [0-9.e+]+ it/s", lines[1]), lines[1]


def test_tqdm_bar_on_a_terminal() -> None:
    terminal = Terminal()
    fabric = Fabric(accelerator="cpu", callbacks=[ProgressBar(file=terminal)])
    _train(fabric, steps=3, total=3)
    out = terminal.getvalue()
    assert "\r" in out  # tqdm redraws in place
    final = out.split("\r")[-2] if out.endswith("\r") else out.split("\r")[-1]
    assert "train: 100%" in out
    assert "3/3" in out
    assert "it/s" in out or "s/step" in out or "step/s" in out
    assert "loss=0.3333" in out and "lr=0.001" in out
    assert "validation at step 3: val_loss=0.25" in out
    assert final  # something was drawn last


def test_plain_lines_on_a_terminal_without_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `from tqdm import tqdm` now raises ImportError
    terminal = Terminal()
    fabric = Fabric(accelerator="cpu", callbacks=[ProgressBar(refresh_rate=1)])
    fabric.call("on_train_batch_end", fabric=fabric, step=1, total=2, metrics={"loss": 2.0})
    bar = fabric.callbacks[0]
    bar._file = terminal
    fabric.call("on_train_batch_end", fabric=fabric, step=2, total=2, metrics={"loss": 1.0})
    assert terminal.getvalue().startswith("step 2/2  loss=1  ")
    assert "\r" not in terminal.getvalue()


def test_use_tqdm_true_without_tqdm_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    bar = ProgressBar(use_tqdm=True, file=Terminal())
    with pytest.raises(ImportError, match=r"ProgressBar\(use_tqdm=True\) needs tqdm, which is not installed"):
        bar.on_train_batch_end(step=1, total=2, metrics={"loss": 1.0})


def test_use_tqdm_false_prints_plain_lines_on_a_terminal() -> None:
    terminal = Terminal()
    bar = ProgressBar(use_tqdm=False, refresh_rate=1, file=terminal)
    bar.on_train_batch_end(step=1, metrics={"loss": 1.5})
    assert terminal.getvalue() == "step 1  loss=1.5\n"  # no rate yet: the first step is the baseline


def test_silent_off_rank_zero_without_a_fabric(capsys: pytest.CaptureFixture[str]) -> None:
    rank_zero_only.rank = 1  # type: ignore[attr-defined]
    bar = ProgressBar(refresh_rate=1)
    bar.on_train_start(total=2)
    bar.on_train_batch_end(step=1, total=2, metrics={"loss": 1.0})
    bar.on_validation_end(step=1, metrics={"val_loss": 1.0})
    bar.on_train_end()
    assert capsys.readouterr().out == ""


def test_refresh_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"ProgressBar\(refresh_rate=0\): .* must be 1 or more"):
        ProgressBar(refresh_rate=0)


@pytest.mark.timeout(120)
def test_only_rank_zero_prints_in_a_two_process_ddp_run(tmp_path: Path) -> None:
    run = run_script(
        tmp_path,
        """
        import torch
        from fabric_core import Fabric

        fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp", callbacks=["progress_bar"])
        fabric.launch()
        fabric.call("on_train_start", fabric=fabric, total=3)
        for step in range(1, 4):
            loss = torch.tensor(float(fabric.global_rank + step))
            fabric.call("on_train_batch_end", fabric=fabric, step=step, total=3, metrics={"loss": loss})
        fabric.call("on_validation_end", fabric=fabric, step=3, metrics={"val_loss": 0.5})
        fabric.call("on_train_end", fabric=fabric)
        fabric.barrier()
        print(f"rank {fabric.global_rank} finished", flush=True)
        """,
    )
    assert run.returncode == 0, run.output
    assert "rank 0 finished" in run.output and "rank 1 finished" in run.output
    steps = [line for line in run.output.splitlines() if line.startswith("step ")]
    # refresh rate 10 for plain lines: only the last step, and from rank 0 (its loss is 0 + 3)
    assert len(steps) == 1, run.output
    assert steps[0].startswith("step 3/3  loss=3  "), run.output
    assert run.output.count("validation at step 3: val_loss=0.5") == 1, run.output
