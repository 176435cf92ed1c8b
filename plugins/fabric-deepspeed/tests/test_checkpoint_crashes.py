"""DeepSpeed directory saves killed at random moments, and exactly between the two renames of the swap.

The harness is fabric-core's (:mod:`fabric_core.testing.crashes`): one *fork server* imports
DeepSpeed once and forks one saving process per trial, which saves the same path in a loop,
every weight holding the step. After each SIGKILL the path, or what a load recovers, must be
a whole checkpoint, and the next save must leave no staging behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fabric_core.strategies import staging
from fabric_core.testing import clean_environment, run_script
from fabric_core.testing.crashes import check_directory, fork_server

from fabric_deepspeed.checkpoint import load_model_states

TRIALS = 20

PREPARE = """
PATH = "ckpt"
import socket
import torch
from torch import nn
from fabric_core import Fabric
from fabric_deepspeed.strategy import DeepSpeedStrategy
"""
SETUP = """
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    os.environ["MASTER_PORT"] = str(probe.getsockname()[1])
fabric = Fabric(accelerator="cpu", devices=1, strategy=DeepSpeedStrategy(stage=2))
fabric.launch()
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(256, 512), nn.Linear(512, 256))
model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.1))
"""
SAVE = """
with torch.no_grad():
    for parameter in model.parameters():
        parameter.fill_(float(step))
fabric.save(PATH, {"model": model, "optimizer": optimizer, "step": step})
"""


def _check(path: Path) -> str:
    """The checkpoint at ``path`` (recovered first if a kill left it missing) is whole; say how it was found."""
    how = check_directory(path)
    saved = load_model_states(path / "checkpoint" / "mp_rank_00_model_states.pt", weights_only=True)
    step = saved["step"]
    for name, tensor in saved["module"].items():
        assert torch.all(tensor == float(step)), f"{name} holds {tensor.flatten()[:3]} at step {step}"
    return how


@pytest.mark.slow
@pytest.mark.timeout(900)  # 20 DeepSpeed engines set up, one per trial: ~20 s each on a loaded machine
def test_a_deepspeed_save_killed_at_random_moments_leaves_a_complete_checkpoint(tmp_path: Path) -> None:
    with fork_server(tmp_path, PREPARE, SETUP, SAVE, clean_environment()) as server:
        outcomes = server.trials(TRIALS, seed=13, longest=0.3, check=lambda: _check(tmp_path / "ckpt"))
    print(f"{TRIALS} kills of a DeepSpeed save: {outcomes}")


CRASH_BETWEEN_RENAMES = """
import torch
from torch import nn
from fabric_core import Fabric
from fabric_deepspeed.strategy import DeepSpeedStrategy

fabric = Fabric(accelerator="cpu", devices=1, strategy=DeepSpeedStrategy(stage=2))
fabric.launch()
layer = nn.Linear(4, 4)
model, optimizer = fabric.setup(layer, torch.optim.SGD(layer.parameters(), lr=0.1))
for step in (1, 2):
    with torch.no_grad():
        model.weight.fill_(float(step))
    fabric.save("ckpt", {"model": model, "step": step})
    print("SAVED", step, flush=True)
"""

LOAD = """
import warnings
from pathlib import Path
import torch
from torch import nn
from fabric_core import Fabric
from fabric_core.strategies import staging
from fabric_deepspeed.strategy import DeepSpeedStrategy

fabric = Fabric(accelerator="cpu", devices=1, strategy=DeepSpeedStrategy(stage=2))
fabric.launch()
layer = nn.Linear(4, 4)
model, optimizer = fabric.setup(layer, torch.optim.SGD(layer.parameters(), lr=0.1))
state = {"model": model, "step": 0}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fabric.load("ckpt", state)
for warning in caught:
    if "interrupted" in str(warning.message):
        print("WARNING", warning.message, flush=True)
print("STEP", state["step"], float(model.weight[0, 0]), flush=True)
fabric.save("ckpt", state)
print("LEFTOVERS", sorted(entry.location.name for entry in staging.leftovers(Path("ckpt"))), flush=True)
"""


@pytest.mark.timeout(300)
def test_a_crash_between_the_two_renames_is_recovered_by_the_next_load(tmp_path: Path) -> None:
    run = run_script(tmp_path, CRASH_BETWEEN_RENAMES, env={staging.CRASH_BETWEEN_RENAMES: "1"})
    assert run.returncode == 137, run.output
    assert not (tmp_path / "ckpt").exists()
    assert sorted(entry.kind for entry in staging.leftovers(tmp_path / "ckpt")) == ["lock", "retired", "staging"]

    run = run_script(tmp_path, LOAD)
    output = run.output
    assert run.returncode == 0, output
    assert "WARNING fabric.load('ckpt'): the checkpoint was missing because a save was interrupted" in output
    assert "the newest complete copy, '.ckpt.fabric-staging-" in output
    assert "STEP 2 2.0" in output
    assert "LEFTOVERS []" in output
