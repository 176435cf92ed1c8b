"""Checkpoints that hold code, or that cannot be written: never run the code, say what happened.

Each malicious file's payload creates a marker file. The marker's absence shows that the
payload never ran; the trusted (``weights_only=False``) controls show that it would have.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

from fabric_core import Fabric
from fabric_core.checkpoint_io import CheckpointError, CheckpointIO, UnsafeCheckpointError
from fabric_core.strategies import sharded_checkpoint
from tests.helpers.processes import ROOT, run_script


class Payload:
    """Unpickling this creates ``marker``: a stand-in for any code a hostile file runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class WithExtra(nn.Module):
    """A model with a non-tensor entry (``_extra_state``), which DCP stores as pickled bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.note = "fresh"

    def get_extra_state(self) -> dict[str, str]:
        return {"note": self.note}

    def set_extra_state(self, state: dict[str, str]) -> None:
        self.note = state["note"]


def _write_dcp(directory: Path, model_state: dict[str, Any]) -> None:
    """A DCP directory as FSDPStrategy writes it, from one process: tensors by DCP, plain values in fabric_meta.pt."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "torch.distributed is ... uninitialized, assuming ... a single process"
        dcp_save({"model": model_state}, checkpoint_id=directory, no_dist=True)
    CheckpointIO().save_checkpoint({"step": 3}, directory / sharded_checkpoint.META_FILE)


def _benign(directory: Path) -> WithExtra:
    model = WithExtra()
    model.note = "saved"
    _write_dcp(directory, model.state_dict())
    return model


def _poison_metadata(directory: Path, marker: Path) -> None:
    import pickle

    (directory / ".metadata").write_bytes(pickle.dumps(Payload(marker)))


def _poison_entry(directory: Path, marker: Path) -> None:
    """A valid .metadata, but the model's non-tensor entry runs code when unpickled."""
    state = WithExtra().state_dict()
    state["_extra_state"] = Payload(marker)
    shutil.rmtree(directory)
    _write_dcp(directory, state)


def _consolidate_cli(directory: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "fabric_core", "consolidate", str(directory), *options]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


LOAD = """
import sys
from fabric_core import Fabric
from fabric_core.strategies.fsdp import FSDPStrategy
from tests.test_checkpoint_safety import WithExtra

fabric = Fabric(accelerator="cpu", devices=1, strategy=FSDPStrategy())
fabric.launch()
model = WithExtra()
state = {"model": model, "step": 0}
try:
    fabric.load(sys.argv[1], state, weights_only=None if sys.argv[2] == "default" else False)
except Exception as err:
    print(f"ERROR {type(err).__name__}: {err}")
else:
    print(f"LOADED note={model.note} step={state['step']}")
"""


def test_a_real_sharded_checkpoint_loads_and_consolidates(tmp_path: Path) -> None:
    saved = _benign(tmp_path / "ckpt")
    run = run_script(tmp_path, LOAD, str(tmp_path / "ckpt"), "default")
    assert "LOADED note=saved step=3" in run.output, run.output

    result = _consolidate_cli(tmp_path / "ckpt")
    assert result.returncode == 0, result.stderr
    consolidated = torch.load(tmp_path / "ckpt.consolidated.pt", weights_only=True)
    assert consolidated["step"] == 3 and consolidated["model"]["_extra_state"] == {"note": "saved"}
    assert torch.equal(consolidated["model"]["lin.weight"], saved.lin.weight)


@pytest.mark.parametrize("poison", [_poison_metadata, _poison_entry], ids=["metadata", "entry"])
def test_fabric_load_never_runs_code_from_a_sharded_checkpoint(tmp_path: Path, poison: Any) -> None:
    _benign(tmp_path / "ckpt")
    marker = tmp_path / "PAYLOAD_RAN"
    poison(tmp_path / "ckpt", marker)

    run = run_script(tmp_path, LOAD, str(tmp_path / "ckpt"), "default")
    assert not marker.exists()
    where = str(tmp_path / "ckpt" / ".metadata") if poison is _poison_metadata else str(tmp_path / "ckpt")
    assert (
        f"ERROR UnsafeCheckpointError: Checkpoint {where!r} holds a Python object (posix.system) that loading with "
        "weights_only=True refuses: unpickling it could run code. Only tensors, containers and plain values load "
        "safely. If you trust the file, load it with weights_only=False." in run.output
    ), run.output

    # The payload is real: trusting the file runs it.
    run_script(tmp_path, LOAD, str(tmp_path / "ckpt"), "trusted")
    assert marker.exists()


@pytest.mark.parametrize("poison", [_poison_metadata, _poison_entry], ids=["metadata", "entry"])
def test_fabric_consolidate_never_runs_code_from_a_sharded_checkpoint(tmp_path: Path, poison: Any) -> None:
    _benign(tmp_path / "ckpt")
    marker = tmp_path / "PAYLOAD_RAN"
    poison(tmp_path / "ckpt", marker)

    result = _consolidate_cli(tmp_path / "ckpt")
    assert not marker.exists() and not (tmp_path / "ckpt.consolidated.pt").exists()
    assert result.returncode == 2
    assert "holds a Python object (posix.system) that loading with weights_only=True refuses" in result.stderr
    assert f"Here: `fabric consolidate --no-weights-only {tmp_path / 'ckpt'}`." in result.stderr
    with pytest.raises(UnsafeCheckpointError, match=r"posix.system.*unpickling it could run code") as raised:
        sharded_checkpoint.consolidate(tmp_path / "ckpt", tmp_path / "out.pt")
    assert not marker.exists()
    where = tmp_path / "ckpt" / ".metadata" if poison is _poison_metadata else tmp_path / "ckpt"
    err = raised.value
    assert (err.path, err.reason, err.refused, err.opt_in) == (where, "unsafe", "posix.system", "weights_only=False")

    trusted = _consolidate_cli(tmp_path / "ckpt", "--no-weights-only")
    assert marker.exists(), trusted.stderr


def test_damaged_metadata_is_called_damaged_not_code(tmp_path: Path) -> None:
    _benign(tmp_path / "ckpt")
    metadata = tmp_path / "ckpt" / ".metadata"
    metadata.write_bytes(metadata.read_bytes()[:40])
    with pytest.raises(CheckpointError, match=r"\.metadata' \(40 bytes\) is corrupt or truncated") as raised:
        sharded_checkpoint.consolidate(tmp_path / "ckpt", tmp_path / "out.pt")
    assert not isinstance(raised.value, UnsafeCheckpointError)
    assert (raised.value.path, raised.value.reason, raised.value.files) == (metadata, "corrupt", {})


# -- single files ----------------------------------------------------------------------------------


def test_a_malicious_file_is_refused_as_code_in_any_pickle_protocol(tmp_path: Path) -> None:
    marker = tmp_path / "PAYLOAD_RAN"
    fabric = Fabric(accelerator="cpu")
    for protocol in (2, 5):
        path = tmp_path / f"evil{protocol}.pt"
        torch.save({"model": Payload(marker)}, path, pickle_protocol=protocol)
        with pytest.raises(UnsafeCheckpointError) as raised:
            fabric.load(path)
        assert str(raised.value) == (
            f"Checkpoint {str(path)!r} holds a Python object (posix.system) that loading with weights_only=True "
            "refuses: unpickling it could run code. Only tensors, containers and plain values load safely. If you "
            "trust the file, load it with weights_only=False."
        )
        assert (raised.value.path, raised.value.reason, raised.value.refused) == (path, "unsafe", "posix.system")
    assert not marker.exists()


def test_a_benign_protocol_5_file_is_not_called_corrupt_and_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "p5.pt"
    torch.save({"weights": torch.ones(3), "step": 4}, path, pickle_protocol=5)
    fabric = Fabric(accelerator="cpu")
    with pytest.raises(CheckpointError) as raised, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own "Detected pickle protocol 5" warning
        fabric.load(path)
    assert not isinstance(raised.value, UnsafeCheckpointError) and "corrupt" not in str(raised.value)
    assert str(raised.value) == (
        f"Checkpoint {str(path)!r} was written with pickle protocol 5 (torch.save(..., pickle_protocol=5)), which "
        "torch.load(weights_only=True) cannot read: it stops at pickle opcode 149. This is a limit of torch's safe "
        "loader, not damage to the file. If you trust the file, load it with weights_only=False and save it again "
        "with fabric.save (the default protocol), so that it loads safely from then on."
    )
    assert (raised.value.path, raised.value.reason) == (path, "protocol")
    assert fabric.load(path, weights_only=False)["step"] == 4


def test_saving_under_a_file_or_onto_a_directory_says_so(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu")
    (tmp_path / "notes").write_text("x")
    with pytest.raises(NotADirectoryError) as not_a_directory:
        fabric.save(tmp_path / "notes" / "run" / "c.pt", {"step": 1})
    assert str(not_a_directory.value) == (
        f"fabric.save({str(tmp_path / 'notes' / 'run' / 'c.pt')!r}): {str(tmp_path / 'notes')!r} is a file, not a "
        "directory, so nothing can be saved under it. Choose another path, or move that file away."
    )
    target = tmp_path / "ckpts"
    (target / "keep").mkdir(parents=True)
    with pytest.raises(IsADirectoryError) as raised:
        fabric.save(target, {"step": 1})
    assert str(raised.value) == (
        f"fabric.save({str(target)!r}): this path is a directory holding 1 entries, and a single-file checkpoint "
        f"cannot replace a directory. Save to a file path instead (for example {str(target / 'checkpoint.pt')!r}), "
        "or remove the directory first."
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpts", "notes"]  # no temporary files left


DISK_FULL = """
import os, sys, torch
from fabric_core import Fabric
fabric = Fabric(accelerator="cpu")
path = sys.argv[1] + "/c.pt"
fabric.save(path, {"version": 1})
try:
    fabric.save(path, {"version": 2, "big": torch.zeros(2**21)})  # 8 MiB on a 4 MiB disk
except OSError as err:
    print(f"ERROR {type(err).__name__}: {err}")
print(f"STILL version={fabric.load(path)['version']}")
print(f"FILES {sorted(os.listdir(sys.argv[1]))}")
"""


def test_a_full_disk_names_the_need_and_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "disk_full.py"
    script.write_text(DISK_FULL)
    mount = f"mount -t tmpfs -o size=4m tmpfs {disk} && exec {sys.executable} {script} {disk}"
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=4m tmpfs {disk}"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(["unshare", "-m", "sh", "-c", mount], capture_output=True, text=True, env=env, timeout=120)
    assert "STILL version=1" in run.stdout and "FILES ['c.pt']" in run.stdout, run.stdout + run.stderr
    line = next(line for line in run.stdout.splitlines() if line.startswith("ERROR"))
    assert line.startswith(
        f"ERROR OSError: [Errno 28] fabric.save({str(disk / 'c.pt')!r}): No space left on device in {str(disk)!r}. "
        "The checkpoint needs about 8.0 MiB of tensors; "
    ), line
    assert line.endswith(
        f"is free now. The previous checkpoint at {str(disk / 'c.pt')!r} is intact (the partial file was removed). "
        "Free some space or save elsewhere."
    ), line
    assert "inline_container" not in line and ".tmp" not in line


# -- strict=False that matches nothing ---------------------------------------------------------------


def test_a_lenient_load_that_matches_no_key_warns_with_both_key_sets(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu")
    fabric.save(tmp_path / "c.pt", {"net": nn.Linear(2, 2), "step": 1})
    message = (
        f"fabric.load({str(tmp_path / 'c.pt')!r}, strict=False) restored nothing: none of the requested keys "
        "['epoch', 'model'] is in the checkpoint, which has ['net', 'step']. Use the keys the checkpoint was saved "
        "with."
    )
    with pytest.warns(UserWarning) as record:
        fabric.load(tmp_path / "c.pt", {"model": nn.Linear(2, 2), "epoch": 0}, strict=False)
    assert [str(w.message) for w in record] == [message]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one matching key: no warning
        fabric.load(tmp_path / "c.pt", {"net": nn.Linear(2, 2), "epoch": 0}, strict=False)


def test_a_lenient_model_load_that_matches_no_entry_warns_with_a_few_names(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu")
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    prefixed = {f"module.{name}": value for name, value in model.state_dict().items()}
    torch.save(prefixed, tmp_path / "raw.pt")
    before = [p.clone() for p in model.parameters()]
    with pytest.warns(UserWarning) as record:
        fabric.load_raw(tmp_path / "raw.pt", nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), strict=False)
    assert [str(w.message) for w in record] == [
        "Loading a state dict into Sequential with strict=False matched none of its 4 entries, so no weight "
        "changed: the model has ['0.bias', '0.weight', '1.bias'] and 1 more, the state dict has ['module.0.bias', "
        "'module.0.weight', 'module.1.bias'] and 1 more. Rename the keys (a prefix such as 'module.' added or "
        "missing?) or check that the checkpoint is for this model."
    ]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


LENIENT_SHARDED = """
import sys, warnings
from torch import nn
from fabric_core import Fabric
from fabric_core.strategies.fsdp import FSDPStrategy

fabric = Fabric(accelerator="cpu", devices=1, strategy=FSDPStrategy())
fabric.launch()
with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter("always")
    fabric.load(sys.argv[1], {"other": nn.Linear(2, 2)}, strict=False)
    fabric.load(sys.argv[1], {"model": nn.Sequential(nn.Linear(2, 2))}, strict=False)
for warning in record:
    if issubclass(warning.category, UserWarning) and "strict=False" in str(warning.message):
        print(f"WARNING {warning.message}")
"""


def test_a_lenient_sharded_load_that_matches_nothing_warns(tmp_path: Path) -> None:
    _benign(tmp_path / "ckpt")
    run = run_script(tmp_path, LENIENT_SHARDED, str(tmp_path / "ckpt"))
    warned = [line for line in run.output.splitlines() if line.startswith("WARNING")]
    assert warned == [
        f"WARNING fabric.load({str(tmp_path / 'ckpt')!r}, strict=False) restored nothing: none of the requested "
        "keys ['other'] is in the checkpoint, which has ['model', 'step']. Use the keys the checkpoint was saved "
        "with.",
        "WARNING Loading a state dict into Sequential with strict=False matched none of its 2 entries, so no weight "
        "changed: the model has ['0.bias', '0.weight'], the state dict has ['_extra_state.note', 'lin.bias', "
        "'lin.weight']. Rename the keys (a prefix such as 'module.' added or missing?) or check that the checkpoint "
        "is for this model.",
    ], run.output
