"""When a rank fails, the whole run stops quickly, says which rank failed first and why, and leaves nothing behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers.processes import processes_with_marker, run_script

CRASH = """
import sys
import torch
from torch import nn
from fabric_core import Fabric

fabric = Fabric(accelerator="cpu", devices=2, strategy=sys.argv[1])

def train(fabric):
    model = nn.Linear(4, 1)
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.01))
    for step in range(10_000):
        if fabric.global_rank == 1 and step == 5:
            raise ValueError("boom at step 5 on purpose")
        fabric.backward(model(torch.randn(8, 4)).sum())
        optimizer.step()
        optimizer.zero_grad()

if __name__ == "__main__":
    if sys.argv[1] == "ddp":
        fabric.launch()
        train(fabric)
    else:
        fabric.launch(train)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_a_crashing_rank_stops_the_run_with_its_error(tmp_path: Path, strategy: str) -> None:
    # The run must end by itself: a hang would run into the subprocess timeout and fail.
    run = run_script(tmp_path, CRASH, strategy, timeout=90)
    assert run.returncode != 0
    assert "boom at step 5 on purpose" in run.output
    if strategy == "ddp":
        assert "fabric: rank 1 failed first: it raised an exception (exit code 1)." in run.output
    time.sleep(0.5)
    assert processes_with_marker(run.marker) == []


MISSED_COLLECTIVE = """
import time
from datetime import timedelta
from fabric_core import Fabric
from fabric_core.strategies.ddp import DDPStrategy

# The timeout bounds the rendezvous too: long enough for rank 1 to start on a loaded machine.
fabric = Fabric(accelerator="cpu", devices=2, strategy=DDPStrategy(timeout=timedelta(seconds=12)))
fabric.launch()
if fabric.global_rank == 1:
    time.sleep(300)  # never reaches the barrier
fabric.barrier("sync")
"""


@pytest.mark.timeout(120)
def test_a_rank_that_never_reaches_a_collective_fails_the_others_after_the_timeout(tmp_path: Path) -> None:
    run = run_script(tmp_path, MISSED_COLLECTIVE, timeout=90)
    assert run.returncode != 0
    assert "fabric.barrier('sync') failed on rank 0" in run.output
    assert "did not reach it in time" in run.output
    time.sleep(0.5)
    assert processes_with_marker(run.marker) == []


SAVE_ON_ONE_RANK = """
import time
from datetime import timedelta
from fabric_core import Fabric
from fabric_core.strategies.ddp import DDPStrategy

fabric = Fabric(accelerator="cpu", devices=2, strategy=DDPStrategy(checkpoint_sync_timeout=timedelta(seconds=3)))
fabric.launch()
if fabric.is_global_zero:
    fabric.save("checkpoint.pt", {"step": 1})  # wrong: every rank must call save
else:
    time.sleep(300)
"""


@pytest.mark.timeout(120)
def test_save_called_on_one_rank_only_fails_with_a_message(tmp_path: Path) -> None:
    run = run_script(tmp_path, SAVE_ON_ONE_RANK, timeout=90)
    assert run.returncode != 0
    assert "fabric.save('checkpoint.pt') was called on rank 0, but not every rank called it within 3s" in run.output
    assert not (tmp_path / "checkpoint.pt").exists()
    time.sleep(0.5)
    assert processes_with_marker(run.marker) == []


RANK_ONE_ENDS = """
import os
import signal
import sys
import torch
from torch import nn
from fabric_core import Fabric

fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp")
fabric.launch()
model = fabric.setup(nn.Linear(4, 1))
for step in range(10_000):
    if fabric.global_rank == 1 and step == 5:
        if sys.argv[1] == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif sys.argv[1] == "exit3":
            sys.exit(3)
        else:
            os._exit(0)  # finished early, as a rank that skipped the rest of the loop would
    fabric.backward(model(torch.randn(8, 4)).sum())
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("how", "summary"),
    [
        ("sigkill", "fabric: rank 1 failed first: it was killed by SIGKILL."),
        ("exit3", "fabric: rank 1 failed first: it exited with code 3."),
        ("exit0", "fabric: rank 1 failed first: it exited with code 0 while the other ranks were still running"),
    ],
)
def test_the_summary_names_the_rank_that_ended_and_how(tmp_path: Path, how: str, summary: str) -> None:
    # Rank 0 then fails in its gradient all-reduce ("Connection reset by peer"), and used
    # to be blamed for it; the summary must name rank 1.
    run = run_script(tmp_path, RANK_ONE_ENDS, how, timeout=90)
    assert run.returncode != 0
    assert summary in run.output, run.output
    assert "fabric: rank 0 failed first" not in run.output
    assert "fabric: ranks that failed after it: 0." in run.output
    time.sleep(0.5)
    assert processes_with_marker(run.marker) == []


BACKWARD_NEVER_JOINED = """
import time
from datetime import timedelta
import torch
from torch import nn
from fabric_core import Fabric
from fabric_core.strategies.ddp import DDPStrategy

# The timeout bounds the rendezvous too: long enough for rank 1 to start on a loaded machine.
fabric = Fabric(accelerator="cpu", devices=2, strategy=DDPStrategy(timeout=timedelta(seconds=12)))
fabric.launch()
model = fabric.setup(nn.Linear(2, 1))
if fabric.global_rank == 1:
    time.sleep(300)  # never joins the gradient all-reduce
fabric.backward(model(torch.randn(3, 2)).sum())
"""


@pytest.mark.timeout(120)
def test_a_backward_that_times_out_names_the_operation_and_the_missing_rank(tmp_path: Path) -> None:
    run = run_script(tmp_path, BACKWARD_NEVER_JOINED, timeout=90)
    assert run.returncode != 0
    assert (
        "fabric.backward (the gradient all-reduce) failed on rank 0: rank 1 never arrived; another rank did not "
        "reach it in time"
    ) in run.output, run.output
    time.sleep(0.5)
    assert processes_with_marker(run.marker) == []
