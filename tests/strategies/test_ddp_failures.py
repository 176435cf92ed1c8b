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


@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_a_crashing_rank_stops_the_run_with_its_error(tmp_path: Path, strategy: str) -> None:
    start = time.monotonic()
    run = run_script(tmp_path, CRASH, strategy, timeout=60)
    elapsed = time.monotonic() - start
    assert run.returncode != 0
    assert "boom at step 5 on purpose" in run.output
    assert elapsed < 30, f"the run took {elapsed:.0f}s to stop"
    if strategy == "ddp":
        assert "fabric: rank 1 failed first" in run.output
    time.sleep(0.5)
    assert processes_with_marker(run.marker) == []


MISSED_COLLECTIVE = """
import time
from datetime import timedelta
from fabric_core import Fabric
from fabric_core.strategies.ddp import DDPStrategy

fabric = Fabric(accelerator="cpu", devices=2, strategy=DDPStrategy(timeout=timedelta(seconds=4)))
fabric.launch()
if fabric.global_rank == 1:
    time.sleep(300)  # never reaches the barrier
fabric.barrier("sync")
"""


def test_a_rank_that_never_reaches_a_collective_fails_the_others_after_the_timeout(tmp_path: Path) -> None:
    start = time.monotonic()
    run = run_script(tmp_path, MISSED_COLLECTIVE, timeout=90)
    assert run.returncode != 0
    assert "fabric.barrier('sync') failed on rank 0" in run.output
    assert "did not reach it in time" in run.output
    assert time.monotonic() - start < 60
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


def test_save_called_on_one_rank_only_fails_with_a_message(tmp_path: Path) -> None:
    run = run_script(tmp_path, SAVE_ON_ONE_RANK, timeout=90)
    assert run.returncode != 0
    assert "fabric.save('checkpoint.pt') was called on rank 0, but not every rank called it within 3s" in run.output
    assert not (tmp_path / "checkpoint.pt").exists()
    time.sleep(0.5)
    assert processes_with_marker(run.marker) == []
