"""Real processes: a two-process DDP run logs one run from rank 0; runs that raise end FAILED with
everything they logged; a sharded checkpoint is logged whole once every rank has written its part."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fabric_core.environments.local import find_free_port

OpenStore = Callable[[str | Path], Any]


def _results(folder: Path) -> dict[int, dict[str, Any]]:
    """What each rank wrote to ``folder/result-<rank>.json``."""
    found = (json.loads(path.read_text()) for path in folder.glob("result-*.json"))
    return {result["rank"]: result for result in found}


DDP = """
import json
import torch
from fabric_core import Fabric
from fabric_mlflow import MLFlowLogger

logger = MLFlowLogger(experiment_name="ddp", save_dir="mlruns", tags={"job": "ddp"})
fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp", loggers=[logger])
fabric.launch()
fabric.seed_everything(7)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
model, optimizer = fabric.setup(model, optimizer)
fabric.logger.log_hyperparams({"lr": 0.05, "world_size": fabric.world_size, "rank": fabric.global_rank})
losses = []
for step in range(4):
    inputs = torch.randn(8, 4) + fabric.global_rank  # each rank its own data, so its own loss
    loss = torch.nn.functional.mse_loss(model(inputs), inputs.sum(dim=1, keepdim=True))
    fabric.backward(loss)
    optimizer.step()
    optimizer.zero_grad()
    fabric.log_dict({"loss": loss, "rank": fabric.global_rank}, step=step)
    losses.append(loss.item())
result = {"rank": fabric.global_rank, "losses": losses, "run_id": logger.run_id,
          "experiment": type(logger.experiment).__name__}
with open(f"result-{fabric.global_rank}.json", "w") as file:
    json.dump(result, file)
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_only_rank_zero_logs_one_run_in_a_two_process_ddp_run(
    run_script: Callable[..., Any], tmp_path: Path, store: OpenStore
) -> None:
    output = run_script(DDP, env={"MASTER_PORT": str(find_free_port())}).check()
    results = _results(tmp_path)
    assert set(results) == {0, 1}, output
    assert results[0]["experiment"] == "MlflowClient"
    assert results[1]["experiment"] == "NoExperiment"  # rank 1's stand-in: logs nothing
    assert results[1]["run_id"] is None  # and opened no run
    assert results[0]["losses"] != results[1]["losses"]  # so the values below tell the ranks apart

    runs = store(tmp_path / "mlruns")
    (run,) = runs.runs("ddp")
    run_id = run.info.run_id
    assert run_id == results[0]["run_id"]
    assert runs.history(run_id, "rank") == [(step, 0.0) for step in range(4)]
    assert runs.history(run_id, "loss") == list(enumerate(results[0]["losses"]))
    assert runs.params(run_id) == {"lr": "0.05", "world_size": "2", "rank": "0"}
    assert runs.user_tags(run_id) == {"job": "ddp"}
    # Torn down at exit (a plain script, no launch(fn)): the run ended well.
    assert run.info.status == "FINISHED"


FAILING = """
import sys
import torch
from fabric_core import Fabric
from fabric_mlflow import MLFlowLogger

how, synchronous = sys.argv[1], {"sync": True, "async": False}[sys.argv[2]]
logger = MLFlowLogger(save_dir="mlruns", synchronous=synchronous)
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

if how == "launch":
    fabric.launch(train)  # teardown in launch's finally
else:
    fabric.launch()
    train(fabric)  # a plain script: teardown at interpreter exit
"""


@pytest.mark.parametrize("synchronous", ["sync", "async"])
@pytest.mark.parametrize("how", ["launch", "plain"])
@pytest.mark.timeout(240)
def test_a_run_that_raises_ends_failed_with_every_logged_metric(
    how: str, synchronous: str, run_script: Callable[..., Any], tmp_path: Path, store: OpenStore
) -> None:
    result = run_script(FAILING, how, synchronous)
    assert result.returncode != 0 and "RuntimeError: loss diverged at step 5" in result.output, result.output
    runs = store(tmp_path / "mlruns")
    (run,) = runs.runs("lightning_logs")
    assert run.info.status == "FAILED", result.output
    assert runs.history(run.info.run_id, "loss") == [(step, 1.0 / (step + 1)) for step in range(5)]
    assert runs.params(run.info.run_id) == {"lr": "0.1"}


FSDP = """
import json
import os
import torch
from fabric_core import Fabric
from fabric_mlflow import MLFlowLogger

logger = MLFlowLogger(save_dir="mlruns", log_model="all")
fabric = Fabric(accelerator="cpu", devices=2, strategy="fsdp", loggers=[logger])
fabric.launch()
model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 1))
model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.1))
fabric.save("sharded", {"model": model, "optimizer": optimizer, "step": 1})
files = sorted(os.path.relpath(os.path.join(root, name), "sharded") for root, _, names in os.walk("sharded")
               for name in names)
with open(f"result-{fabric.global_rank}.json", "w") as file:
    json.dump({"rank": fabric.global_rank, "run_id": logger.run_id, "files": files}, file)
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_sharded_checkpoint_is_logged_whole(run_script: Callable[..., Any], tmp_path: Path, store: OpenStore) -> None:
    output = run_script(FSDP, env={"MASTER_PORT": str(find_free_port())}).check()
    results = _results(tmp_path)
    assert set(results) == {0, 1}, output
    files = results[0]["files"]
    assert len(files) >= 2, files  # a directory with a part from each rank, and its metadata
    run_id = results[0]["run_id"]
    assert store(tmp_path / "mlruns").artifacts(run_id) == sorted(f"model/checkpoints/sharded/{name}" for name in files)
