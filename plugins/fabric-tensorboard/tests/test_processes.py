"""Real runs in their own processes: two DDP ranks on the CPU, and runs that fail mid-training.

Each script is run as users run theirs (``python script.py``); ``fabric.launch()`` starts the
second rank over gloo. What the run left on disk is read back afterwards with TensorBoard's reader.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fabric_core.environments.local import find_free_port

Events = Callable[[str | Path], Any]
AsStored = Callable[[float], float]

DDP = """
import json, os, sys
import torch
from fabric_core import Fabric
from fabric_tensorboard import TensorBoardLogger

logger = TensorBoardLogger("runs", name="ddp", max_queue=10_000, flush_secs=10_000)
fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp", loggers=[logger])
fabric.launch()
fabric.seed_everything(7)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
model, optimizer = fabric.setup(model, optimizer)
fabric.logger.log_hyperparams({"lr": 0.05, "world_size": fabric.world_size})
losses = []
for step in range(4):
    inputs = torch.randn(8, 4) + fabric.global_rank  # each rank its own data, so its own loss
    loss = torch.nn.functional.mse_loss(model(inputs), inputs.sum(dim=1, keepdim=True))
    fabric.backward(loss)
    optimizer.step()
    optimizer.zero_grad()
    fabric.log_dict({"loss": loss, "rank": fabric.global_rank}, step=step)
    losses.append(loss.item())
writer = type(logger.experiment).__name__
print("RESULT", json.dumps({"rank": fabric.global_rank, "losses": losses, "writer": writer}), flush=True)
"""


@pytest.mark.slow
def test_only_rank_zero_writes_in_a_two_process_ddp_run(
    run_script: Callable[..., Any], tmp_path: Path, events: Events, as_stored: AsStored
) -> None:
    output = run_script(DDP, env={"MASTER_PORT": str(find_free_port())}).check()
    results = {
        result["rank"]: result
        for result in (json.loads(line.split("RESULT ", 1)[1]) for line in output.splitlines() if "RESULT " in line)
    }
    assert set(results) == {0, 1}, output
    assert results[0]["writer"] == "SummaryWriter"
    assert results[1]["writer"] == "_NoExperiment"  # rank 1's stand-in: writes nothing
    assert results[0]["losses"] != results[1]["losses"]  # so the values below tell the ranks apart

    # One version folder with one event file: rank 1 created nothing, not even a version_1.
    experiment = tmp_path / "runs" / "ddp"
    assert sorted(path.name for path in experiment.iterdir()) == ["version_0"]
    assert len(list((experiment / "version_0").iterdir())) == 1
    run = events(experiment / "version_0")
    assert run.scalars("rank") == [(step, 0.0) for step in range(4)]
    assert run.scalars("loss") == [(step, as_stored(loss)) for step, loss in enumerate(results[0]["losses"])]
    assert run.hparam_values() == {"lr": 0.05, "world_size": 2.0}
    # Torn down at exit (a plain script, no launch(fn)): the queued events were written, status recorded.
    assert run.status() == "STATUS_SUCCESS"


FAILING = """
import sys
import torch
from fabric_core import Fabric
from fabric_tensorboard import TensorBoardLogger

# A queue and an interval that never flush by themselves: only finalize puts the events on disk.
logger = TensorBoardLogger("runs", max_queue=10_000, flush_secs=10_000)
fabric = Fabric(accelerator="cpu", loggers=[logger])

def train(fabric):
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = fabric.setup(model, optimizer)
    fabric.logger.log_hyperparams({"lr": 0.1})
    for step in range(10):
        if step == 5:
            raise RuntimeError("loss diverged at step 5")
        fabric.log("loss", 1.0 / (step + 1), step=step)

if sys.argv[1] == "launch":
    fabric.launch(train)  # teardown in launch's finally
else:
    fabric.launch()
    train(fabric)  # a plain script: teardown at interpreter exit
"""


@pytest.mark.parametrize("how", ["launch", "plain"])
def test_a_run_that_raises_leaves_every_logged_metric_on_disk(
    how: str, run_script: Callable[..., Any], tmp_path: Path, events: Events, as_stored: AsStored
) -> None:
    result = run_script(FAILING, how)
    assert result.returncode != 0 and "RuntimeError: loss diverged at step 5" in result.output, result.output
    run = events(tmp_path / "runs" / "lightning_logs" / "version_0")
    assert run.scalars("loss") == [(step, as_stored(1.0 / (step + 1))) for step in range(5)]
    assert run.hparam_values() == {"lr": 0.1}


def test_a_run_that_raises_in_launch_is_recorded_as_failed(
    run_script: Callable[..., Any], tmp_path: Path, events: Events
) -> None:
    run_script(FAILING, "launch")
    assert events(tmp_path / "runs" / "lightning_logs" / "version_0").status() == "STATUS_FAILURE"


def test_a_plain_script_that_raises_is_recorded_as_failed(
    run_script: Callable[..., Any], tmp_path: Path, events: Events
) -> None:
    run_script(FAILING, "plain")
    assert events(tmp_path / "runs" / "lightning_logs" / "version_0").status() == "STATUS_FAILURE"
