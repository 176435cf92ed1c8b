"""Real runs in their own processes: two DDP ranks on the CPU, and runs that fail mid-training.

Each script is run as users run theirs (``python script.py``); ``fabric.launch()`` starts the
second rank over gloo. What the run left on disk is read back afterwards from W&B's run file.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fabric_core.environments.local import find_free_port

Runs = Callable[[str | Path], Any]
Folders = Callable[[str | Path], list[Path]]

DDP = """
import json, sys
import torch
from fabric_core import Fabric
from fabric_wandb import WandbLogger

logger = WandbLogger(project="ddp", save_dir="runs", offline=True, log_model=True)
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
fabric.save("model.ckpt", {"model": model, "step": 4})
result = {
    "rank": fabric.global_rank,
    "losses": losses,
    "experiment": type(logger.experiment).__name__,
    "wandb_imported": "wandb" in sys.modules,
}
with open(f"result-{fabric.global_rank}.json", "w") as file:  # a file each: the ranks share one stdout
    json.dump(result, file)
# A plain script: the run is finished at interpreter exit, and the checkpoint uploaded then.
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_only_rank_zero_starts_a_run_in_a_two_process_ddp_run(
    run_script: Callable[..., Any], tmp_path: Path, run_file: Runs, run_folders: Folders
) -> None:
    output = run_script(DDP, env={"MASTER_PORT": str(find_free_port())}).check()
    results = {rank: json.loads((tmp_path / f"result-{rank}.json").read_text()) for rank in (0, 1)}
    assert [results[rank]["rank"] for rank in (0, 1)] == [0, 1], output
    assert results[0]["experiment"] == "Run"
    assert results[1]["experiment"] == "NoRun"  # rank 1's stand-in: logs nothing
    assert results[1]["wandb_imported"] is False  # rank 1 never even imports wandb
    assert results[0]["losses"] != results[1]["losses"]  # so the values below tell the ranks apart

    (folder,) = run_folders(tmp_path / "runs")  # one run: rank 1 started none
    run = run_file(folder)
    assert run.metric("rank") == [(step, 0) for step in range(4)]
    assert run.metric("loss") == list(enumerate(results[0]["losses"]))
    assert run.config() == {"lr": 0.05, "world_size": 2}
    assert run.exit_code() == 0  # finished at exit, before W&B's own exit handler
    # log_model=True: the checkpoint uploaded when the run ended, exactly as written.
    (artifact,) = run.artifacts()
    (entry,) = artifact.manifest.contents
    digest = base64.b64encode(hashlib.md5((tmp_path / "model.ckpt").read_bytes()).digest()).decode()
    assert (artifact.name, entry.path, entry.digest) == (f"model-{run.run().run_id}", "model.ckpt", digest)


FAILING = """
import sys
import torch
from fabric_core import Fabric
from fabric_wandb import WandbLogger

logger = WandbLogger(project="failing", save_dir="runs", offline=True, log_model=True)
fabric = Fabric(accelerator="cpu", loggers=[logger])

def train(fabric):
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = fabric.setup(model, optimizer)
    fabric.logger.log_hyperparams({"lr": 0.1})
    for step in range(10):
        if step == 3:
            fabric.save("model.ckpt", {"model": model})
        if step == 5:
            raise RuntimeError("loss diverged at step 5")
        fabric.log("loss", 1.0 / (step + 1), step=step)

if sys.argv[1] == "launch":
    fabric.launch(train)  # teardown in launch's finally
else:
    fabric.launch()
    train(fabric)  # a plain script: teardown at interpreter exit
"""


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["launch", "plain"])
def test_a_run_that_raises_is_finished_as_failed_with_every_metric_on_disk(
    how: str, run_script: Callable[..., Any], tmp_path: Path, run_file: Runs, run_folders: Folders
) -> None:
    result = run_script(FAILING, how)
    assert result.returncode != 0 and "RuntimeError: loss diverged at step 5" in result.output, result.output
    (folder,) = run_folders(tmp_path / "runs")
    run = run_file(folder)
    assert run.exit_code() == 1
    assert run.metric("loss") == [(step, 1.0 / (step + 1)) for step in range(5)]
    assert run.config() == {"lr": 0.1}
    assert run.artifacts() == []  # log_model=True uploads when a run succeeds, as in Lightning
