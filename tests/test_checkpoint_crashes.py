"""Saves killed at random moments, and exactly between the two renames of a directory swap.

After every kill the checkpoint path (or the recovery a load does) holds a complete
checkpoint, and the next save leaves no staging behind. See :mod:`fabric_core.testing.crashes`
for the fork server that keeps each trial cheap.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from fabric_core.strategies import manifest, sharded_checkpoint, staging
from fabric_core.testing.crashes import check_directory, fork_server
from tests.helpers.processes import ROOT, run_script

TRIALS = 20


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FABRIC_TEST_")}
    for variable in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR", "NODE_RANK"):
        env.pop(variable, None)
    return {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "FABRIC_DISABLE_PLUGIN_AUTOLOAD": "1"}


def _assert_consistent(values: dict[str, torch.Tensor], step: int) -> None:
    """Every tensor of a saved model holds the step it was saved at: no mix of two saves."""
    for name, tensor in values.items():
        assert torch.all(tensor == float(step)), f"{name} holds {tensor.flatten()[:3]} at step {step}"


# The saving child's model: about 1 MiB of weights, each tensor filled with the step.
MODEL = """
import torch
from torch import nn
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(256, 512), nn.Linear(512, 256))
"""
FILL = """
with torch.no_grad():
    for parameter in model.parameters():
        parameter.fill_(float(step))
"""


@pytest.mark.timeout(180)
def test_a_single_file_save_killed_at_random_moments_leaves_a_complete_checkpoint(tmp_path: Path) -> None:
    prepare = "PATH = 'ckpt.pt'\nfrom fabric_core import Fabric\n" + MODEL
    setup = "fabric = Fabric(accelerator='cpu', devices=1)\n"
    save = FILL + "fabric.save(PATH, {'model': model, 'step': step})\n"

    def check() -> str:
        checkpoint = torch.load(tmp_path / "ckpt.pt", weights_only=True)  # always there: one atomic rename
        _assert_consistent(checkpoint["model"], checkpoint["step"])
        return "in place"

    with fork_server(tmp_path, prepare, setup, save, _env()) as server:
        server.trials(TRIALS, seed=11, longest=0.2, check=check)
    survivors = staging.leftovers(tmp_path / "ckpt.pt")
    print(f"{TRIALS} kills; leftovers of the last one before a next save: {len(survivors)}")


def _check_consolidated(path: Path) -> str:
    """The directory at ``path`` is whole (recovered first if a kill left it missing), and its tensors agree."""
    how = check_directory(path)
    output = path.parent / "consolidated.pt"
    sharded_checkpoint.consolidate(path, output)
    checkpoint = torch.load(output, weights_only=True)
    _assert_consistent(checkpoint["model"], checkpoint["step"])
    output.unlink()
    return how


FSDP_PREPARE = (
    "PATH = 'ckpt'\nfrom fabric_core import Fabric\nfrom fabric_core.strategies.fsdp import FSDPStrategy\n" + MODEL
)
FSDP_SETUP = """
global model
import socket
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    os.environ["MASTER_PORT"] = str(probe.getsockname()[1])
fabric = Fabric(accelerator="cpu", devices=1, strategy=FSDPStrategy())
fabric.launch()
model = fabric.setup_module(model)
"""


@pytest.mark.timeout(300)
def test_a_sharded_save_killed_at_random_moments_leaves_a_complete_checkpoint(tmp_path: Path) -> None:
    save = FILL + "fabric.save(PATH, {'model': model, 'step': step})\n"
    with fork_server(tmp_path, FSDP_PREPARE, FSDP_SETUP, save, _env()) as server:
        outcomes = server.trials(TRIALS, seed=12, longest=0.3, check=lambda: _check_consolidated(tmp_path / "ckpt"))
    print(f"{TRIALS} kills of a sharded save: {outcomes}")


CRASH_BETWEEN_RENAMES = """
import sys
from fabric_core import Fabric
from fabric_core.strategies.fsdp import FSDPStrategy
from torch import nn
import torch

fabric = Fabric(accelerator="cpu", devices=1, strategy=FSDPStrategy())
fabric.launch()
model = fabric.setup_module(nn.Linear(4, 4))
for step in (1, 2):
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(float(step))
    fabric.save("ckpt", {"model": model, "step": step})
    print("SAVED", step, flush=True)
"""

LOAD_AFTER_CRASH = """
import sys, warnings
from fabric_core import Fabric
from fabric_core.strategies.fsdp import FSDPStrategy
from fabric_core.strategies import staging
from pathlib import Path
from torch import nn

fabric = Fabric(accelerator="cpu", devices=1, strategy=FSDPStrategy())
fabric.launch()
model = fabric.setup_module(nn.Linear(4, 4))
state = {"model": model, "step": 0}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fabric.load("ckpt", state)
for warning in caught:
    print("WARNING", warning.message, flush=True)
print("STEP", state["step"], float(model.weight.full_tensor()[0, 0]), flush=True)
fabric.save("ckpt", state)
print("LEFTOVERS", sorted(entry.location.name for entry in staging.leftovers(Path("ckpt"))), flush=True)
"""


@pytest.mark.timeout(180)
def test_a_crash_between_the_two_renames_is_recovered_by_the_next_load(tmp_path: Path) -> None:
    run = run_script(tmp_path, CRASH_BETWEEN_RENAMES, env={**_env(), staging.CRASH_BETWEEN_RENAMES: "1"})
    assert run.returncode == 137, run.output
    assert "SAVED 1" in run.output and "SAVED 2" not in run.output
    assert not (tmp_path / "ckpt").exists()
    kinds = sorted(entry.kind for entry in staging.leftovers(tmp_path / "ckpt"))
    assert kinds == ["lock", "retired", "staging"]  # the old and the new copy, both complete

    run = run_script(tmp_path, LOAD_AFTER_CRASH, env=_env())
    assert run.returncode == 0, run.output
    warning = next(line for line in run.output.splitlines() if line.startswith("WARNING"))
    copy = warning.split("copy, '")[1].split("'")[0]
    assert copy.startswith(".ckpt.fabric-staging-")  # the newer of the two
    assert warning == (
        "WARNING fabric.load('ckpt'): the checkpoint was missing because a save was interrupted while swapping it in; "
        f"the newest complete copy, {copy!r}, was put back in its place."
    )
    assert "STEP 2 2.0" in run.output  # the new checkpoint, whole
    assert "LEFTOVERS []" in run.output  # the next save removed the retired copy and the dead save's lock


def test_a_missing_path_with_only_incomplete_leftovers_names_them(tmp_path: Path) -> None:
    path = tmp_path / "ckpt"
    (tmp_path / ".ckpt.fabric-staging-host-1-deadbeef").mkdir()  # a save killed before its manifest
    with pytest.raises(FileNotFoundError) as caught:
        sharded_checkpoint.CheckpointIO().load_checkpoint(path)
    assert str(caught.value) == (
        f"Checkpoint not found at {str(path)!r}. Beside it are leftovers of an interrupted save, none of them "
        "complete: ['.ckpt.fabric-staging-host-1-deadbeef']. Restore the checkpoint from a backup or load an "
        "earlier one."
    )
    assert staging.recover(path) is None


def test_a_live_save_is_never_cleaned_and_never_recovered_from(tmp_path: Path) -> None:
    path = tmp_path / "ckpt"
    live = staging.begin(path, directory=True, token="otherhost-7-cafe0001")  # holds its lock, like a live save
    (live.location / manifest.MANIFEST_FILE).write_text('{"files": {}}')  # even complete, it is not ours to take
    with pytest.raises(FileNotFoundError) as caught:
        sharded_checkpoint.CheckpointIO().load_checkpoint(path)
    assert str(caught.value) == (
        f"Checkpoint not found at {str(path)!r}: a save to it is running right now (process otherhost-7-cafe0001). "
        "Wait for fabric.save to finish, then load again."
    )
    assert staging.recover(path) is None

    dead = staging.sibling(path, "staging", "host-8-dead0002")
    dead.mkdir()
    staging.sibling(path, "lock", "host-8-dead0002").touch()  # a lock nobody holds: its save was killed
    mine = staging.begin(path, directory=True)
    (mine.location / "data").write_text("new")
    mine.commit()
    assert (path / "data").read_text() == "new"
    names = sorted(entry.location.name for entry in staging.leftovers(path))
    assert names == [".ckpt.fabric-lock-otherhost-7-cafe0001", ".ckpt.fabric-staging-otherhost-7-cafe0001"]
    live.abort()
    assert staging.leftovers(path) == []


def test_a_failed_single_file_save_removes_its_staging(tmp_path: Path) -> None:
    class Unpicklable:
        def __reduce__(self) -> tuple[object, ...]:
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        sharded_checkpoint.CheckpointIO().save_checkpoint({"bad": Unpicklable()}, tmp_path / "ckpt.pt")
    assert list(tmp_path.iterdir()) == []


CORRUPTIONS = """
import shutil, sys
from pathlib import Path
import torch
from torch import nn
from fabric_core import Fabric
from fabric_core.strategies.fsdp import FSDPStrategy

fabric = Fabric(accelerator="cpu", devices=1, strategy=FSDPStrategy())
fabric.launch()
model = fabric.setup_module(nn.Linear(64, 64))
fabric.save("ckpt", {"model": model, "step": 5})
with torch.no_grad():
    model.weight.fill_(-1.0)

def damage(name, how):
    copy = Path(name)
    shutil.copytree("ckpt", copy)
    shard = next(copy.glob("*.distcp"))
    if how == "truncate":
        shard.write_bytes(shard.read_bytes()[:100])
    elif how == "missing":
        shard.unlink()
    elif how == "changed":
        data = bytearray(shard.read_bytes()); data[-10] ^= 0xFF; shard.write_bytes(bytes(data))
    elif how == "foreign":
        (copy / "notes.txt").write_text("mine")
    elif how == "no manifest":
        (copy / "fabric_manifest.json").unlink()
    return copy

for how in ("truncate", "missing", "changed", "foreign", "no manifest"):
    copy = damage(how.replace(" ", "_"), how)
    state = {"model": model, "step": 0}
    try:
        fabric.load(str(copy), state)
    except Exception as err:
        print(f"{how.upper()}: {type(err).__name__}: {err}", flush=True)
    else:
        print(f"{how.upper()}: LOADED step={state['step']}", flush=True)
    print(f"{how.upper()} WEIGHT {float(model.weight.full_tensor()[0, 0])}", flush=True)
    with torch.no_grad():
        model.weight.fill_(-1.0)
"""


@pytest.mark.timeout(180)
def test_a_damaged_directory_is_refused_by_name_before_anything_loads(tmp_path: Path) -> None:
    run = run_script(tmp_path, CORRUPTIONS, env=_env())
    assert run.returncode == 0, run.output
    lines = {line.split(":", 1)[0]: line.split(": ", 1)[1] for line in run.output.splitlines() if ": " in line}
    shard = next((tmp_path / "ckpt").glob("*.distcp")).name
    size = (tmp_path / "ckpt" / shard).stat().st_size
    tail = (
        ". Nothing was loaded. Restore the directory from a backup or load an earlier checkpoint (remove a foreign "
        "file if you put it there)."
    )
    head = "CheckpointError: Checkpoint '{}' does not match its fabric_manifest.json: "
    assert lines["TRUNCATE"] == head.format("truncate") + f"truncated {shard!r} (100 of {size} bytes)" + tail
    assert lines["MISSING"] == head.format("missing") + f"missing {shard!r}" + tail
    assert lines["CHANGED"] == (
        head.format("changed") + f"changed {shard!r} (its checksum differs from the saved one)" + tail
    )
    assert lines["FOREIGN"] == head.format("foreign") + "foreign 'notes.txt' (not written by the save)" + tail
    for how in ("TRUNCATE", "MISSING", "CHANGED", "FOREIGN"):
        assert f"{how} WEIGHT -1.0" in run.output  # the model was not touched
    assert lines["NO MANIFEST"] == "LOADED step=5"  # older checkpoints, without a manifest, still load
    shutil.rmtree(tmp_path / "ckpt")


SHAPE_MISMATCH = """
import torch
from torch import nn
from fabric_core import Fabric
from fabric_core.strategies.fsdp import FSDPStrategy

fabric = Fabric(accelerator="cpu", devices=1, strategy=FSDPStrategy())
fabric.launch()
fabric.save("ckpt", {"model": fabric.setup_module(nn.Sequential(nn.Linear(4, 8)))})
model = fabric.setup_module(nn.Sequential(nn.Linear(4, 4)))
with torch.no_grad():
    model.module[0].weight.fill_(-1.0)
try:
    fabric.load("ckpt", {"model": model})
except Exception as err:
    print(f"ERROR {type(err).__name__}: {err}", flush=True)
print("WEIGHT", float(model.module[0].weight.full_tensor()[0, 0]), flush=True)
"""


@pytest.mark.timeout(120)
def test_a_sharded_load_with_another_shape_names_the_key_and_both_shapes(tmp_path: Path) -> None:
    run = run_script(tmp_path, SHAPE_MISMATCH, env=_env())
    assert run.returncode == 0, run.output
    error = next(line for line in run.output.splitlines() if line.startswith("ERROR"))
    assert error == (
        "ERROR ValueError: The checkpoint 'ckpt' holds 'model.0.weight' with shape [8, 4] but the model's "
        "'model.0.weight' has shape [4, 4]. Nothing was loaded into that model. Build the model with the "
        "configuration it was saved with, or leave the key out of the load."
    )
    assert "WEIGHT -1.0" in run.output
