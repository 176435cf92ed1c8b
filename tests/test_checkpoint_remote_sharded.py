"""Sharded (DCP) checkpoints at fsspec URLs, written and read by real FSDP processes.

``memory://`` lives inside one process, so the multi-process tests use ``teststore://``
(:mod:`tests.helpers.object_store`): a folder under ``tmp_path`` that every rank's process
serves under its own protocol, with rename done as copy + delete, as on an object store.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from fabric_core.checkpoint_io import CheckpointError
from fabric_core.strategies import manifest, remote_directory, sharded_checkpoint
from fabric_core.testing.crashes import fork_server
from tests.helpers import object_store
from tests.helpers.object_store import ROOT_VARIABLE
from tests.helpers.processes import run_script
from tests.test_checkpoint_crashes import FILL, FSDP_SETUP, MODEL, _assert_consistent
from tests.test_checkpoint_crashes import _env as _crash_env

HEADER = """
import os, sys
from tests.helpers.object_store import register
register(os.environ["FABRIC_TEST_STORE"])
import torch
from torch import nn
from fabric_core import Fabric
from fabric_core.strategies.fsdp import FSDPStrategy

def build(fabric, seed):
    torch.manual_seed(seed)
    model = fabric.setup_module(nn.Linear(64, 64))
    return model, fabric.setup_optimizers(torch.optim.Adam(model.parameters(), lr=0.1))

def digest(model):
    with torch.no_grad():
        return repr(float(model(torch.ones(1, 64)).sum()))

def step(fabric, model, optimizer):
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(1))
    fabric.backward(model(x).pow(2).mean())
    optimizer.step()
    optimizer.zero_grad()

def say(line):
    os.write(1, (line + "\\n").encode())  # one write: lines of two ranks never interleave

def report(what, call):
    try:
        result = call()
    except BaseException as err:
        say(f"{what}: {type(err).__name__}: {err}")
        if hasattr(err, "reason"):
            say(f"ATTRIBUTES {what[5:]} {err.path} {err.reason} {sorted(err.files.items())}")
    else:
        say(f"{what}: OK {result}")
"""

ROUND_TRIP = (
    HEADER
    + """
mode, devices, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fabric = Fabric(accelerator="cpu", devices=devices, strategy=FSDPStrategy())
fabric.launch()
rank = fabric.global_rank
if mode == "save":
    model, optimizer = build(fabric, 0)
    step(fabric, model, optimizer)
    fabric.save(url, {"model": model, "optimizer": optimizer, "step": 1, "note": "hi"})
    say(f"R{rank} WEIGHTS {digest(model)}")
    if devices > 1:
        report(f"R{rank} MEMORY", lambda: fabric.save("memory://x/ckpt", {"model": model}))
else:
    model, optimizer = build(fabric, 5)  # other weights, fresh optimizer state
    state = {"model": model, "optimizer": optimizer, "step": 0}
    rest = fabric.load(url, state)
    assert state["step"] == 1 and rest == {"note": "hi"}, (state, rest)
    say(f"R{rank} WEIGHTS {digest(model)}")
step(fabric, model, optimizer)  # Adam's moments came back too: the next step is the same
say(f"R{rank} NEXT {digest(model)}")
"""
)

SAVE = (
    HEADER
    + """
url, value = sys.argv[1], int(sys.argv[2])
fabric = Fabric(accelerator="cpu", devices=1, strategy=FSDPStrategy())
fabric.launch()
model, _ = build(fabric, 0)
with torch.no_grad():
    model.weight.fill_(float(value))
fabric.save(url, {"model": model, "step": value})
print("SAVED", flush=True)
"""
)

LOAD = (
    HEADER
    + """
weights_only = None if sys.argv[1] == "default" else False
fabric = Fabric(accelerator="cpu", devices=1, strategy=FSDPStrategy())
fabric.launch()
model, _ = build(fabric, 0)
for url in sys.argv[2:]:
    with torch.no_grad():
        model.weight.fill_(-1.0)
    state = {"model": model, "step": 0}
    report(f"LOAD {url}", lambda: f"step={fabric.load(url, state, weights_only=weights_only) or state['step']}")
    print(f"WEIGHT {url} {float(model.weight.full_tensor()[0, 0])}", flush=True)
"""
)

IN_MEMORY = (
    HEADER
    + """
import fsspec
fabric = Fabric(accelerator="cpu", devices=1, strategy=FSDPStrategy())
fabric.launch()
fs = fsspec.filesystem("memory")
url = "memory://runs/ckpt"
model, optimizer = build(fabric, 0)
step(fabric, model, optimizer)
fabric.save(url, {"model": model, "optimizer": optimizer, "step": 1})
print("FILES", sorted(path.rsplit("/", 1)[-1] for path in fs.find("/runs")), flush=True)
other, other_optimizer = build(fabric, 5)
state = {"model": other, "optimizer": other_optimizer, "step": 0}
fabric.load(url, state)
print("SAME", digest(model) == digest(other), state["step"], flush=True)

class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle")

fs.pipe_file("/runs/.ckpt.fabric-staging-host-1-deadbeef/__0_0.distcp", b"partial")  # a crashed save's leftover
report("FAILED", lambda: fabric.save(url, {"model": model, "bad": Unpicklable()}))
print("AFTER FAILED", sorted(fs.ls("/runs", detail=False)), flush=True)
fabric.save(url, {"model": model, "step": 2})
print("AFTER SAVE", sorted(fs.ls("/runs", detail=False)), flush=True)
state = {"model": other, "step": 0}
fabric.load(url, state)
print("STEP", state["step"], flush=True)

fabric.strategy.state_dict_type = "full"  # one file at the URL, written by rank 0
fabric.save("memory://runs/full.pt", {"model": model, "step": 4})
state = {"model": other, "step": 0}
fabric.load("memory://runs/full.pt", state)
print("FULL", fs.isfile("/runs/full.pt"), state["step"], digest(model) == digest(other), flush=True)
"""
)


def _env(store: Path, **more: str) -> dict[str, str]:
    return {ROOT_VARIABLE: str(store), **more}


def _lines(output: str, prefix: str) -> list[str]:
    return [line[len(prefix) :].strip() for line in output.splitlines() if line.startswith(prefix)]


@pytest.mark.timeout(180)
def test_one_process_round_trip_through_memory_and_a_failed_save_leaves_nothing(tmp_path: Path) -> None:
    run = run_script(tmp_path, IN_MEMORY, env=_env(tmp_path / "store"))
    assert run.returncode == 0, run.output
    assert _lines(run.output, "FILES") == ["['.metadata', '__0_0.distcp', 'fabric_manifest.json', 'fabric_meta.pt']"], (
        run.output
    )
    assert _lines(run.output, "SAME") == ["True 1"], run.output
    assert _lines(run.output, "FAILED:") == ["RuntimeError: cannot pickle"], run.output
    # The failed save removed its own staging; the crashed save's leftover waits for the next success.
    assert _lines(run.output, "AFTER FAILED") == ["['/runs/.ckpt.fabric-staging-host-1-deadbeef', '/runs/ckpt']"], (
        run.output
    )
    assert _lines(run.output, "AFTER SAVE") == ["['/runs/ckpt']"], run.output
    assert _lines(run.output, "STEP") == ["2"], run.output
    assert _lines(run.output, "FULL") == ["True 4 True"], run.output


@pytest.mark.timeout(300)
def test_two_processes_save_to_a_shared_store_and_load_at_two_and_one(tmp_path: Path) -> None:
    store = tmp_path / "store"
    url = "teststore://bucket/run/ckpt"
    saved = run_script(tmp_path, ROUND_TRIP, "save", "2", url, env=_env(store))
    assert saved.returncode == 0, saved.output
    folder = store / "bucket" / "run" / "ckpt"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".metadata",
        "__0_0.distcp",
        "__1_0.distcp",
        "fabric_manifest.json",
        "fabric_meta.pt",
    ]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["ckpt"]  # no staging left
    weights, following = _lines(saved.output, "R0 WEIGHTS"), _lines(saved.output, "R0 NEXT")
    assert _lines(saved.output, "R1 WEIGHTS") == weights
    # memory:// cannot be shared by two processes: refused on every rank before anything is written.
    for rank in (0, 1):
        assert _lines(saved.output, f"R{rank} MEMORY:") == [
            "ValueError: fabric.save('memory://x/ckpt'): 'memory://x/ckpt' is in fsspec's memory file system, which "
            "lives inside one process; with 2 processes each rank would write into its own memory. Use a store that "
            "every rank reaches (a shared path, s3://, gs://, ...)."
        ], saved.output

    for devices in ("2", "1"):
        loaded = run_script(tmp_path, ROUND_TRIP, "load", devices, url, env=_env(store))
        assert loaded.returncode == 0, loaded.output
        assert _lines(loaded.output, "R0 WEIGHTS") == weights, loaded.output
        assert _lines(loaded.output, "R0 NEXT") == following, loaded.output


class Payload:
    """Unpickling this creates ``marker``: a stand-in for any code a hostile ``.metadata`` runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.timeout(300)
def test_damaged_and_malicious_folders_are_refused_by_name_and_the_model_is_untouched(tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert run_script(tmp_path, SAVE, "teststore://b/ckpt", "3", env=_env(store)).returncode == 0
    good = store / "b" / "ckpt"
    shard = "__0_0.distcp"
    size = (good / shard).stat().st_size
    marker = tmp_path / "PAYLOAD_RAN"
    for name in ("truncated", "missing", "poisoned", "poisoned_bare"):
        shutil.copytree(good, store / "b" / name)
    (store / "b" / "truncated" / shard).write_bytes((good / shard).read_bytes()[:100])
    (store / "b" / "missing" / shard).unlink()
    for name in ("poisoned", "poisoned_bare"):
        (store / "b" / name / ".metadata").write_bytes(pickle.dumps(Payload(marker)))
    (store / "b" / "poisoned_bare" / "fabric_manifest.json").unlink()  # as plain DCP writes it: no manifest

    urls = [f"teststore://b/{name}" for name in ("ckpt", "truncated", "missing", "poisoned", "poisoned_bare")]
    run = run_script(tmp_path, LOAD, "default", *urls, env=_env(store))
    assert run.returncode == 0, run.output
    assert not marker.exists()
    results = dict(line.split(": ", 1) for line in run.output.splitlines() if line.startswith("LOAD "))
    head = "CheckpointError: Checkpoint 'teststore://b/{}' does not match its fabric_manifest.json: "
    tail = (
        ". Nothing was loaded. Restore the directory from a backup or load an earlier checkpoint (remove a foreign "
        "file if you put it there)."
    )
    assert results["LOAD teststore://b/ckpt"] == "OK step=3"
    assert results["LOAD teststore://b/truncated"] == (
        head.format("truncated") + f"truncated {shard!r} (100 of {size} bytes)" + tail
    )
    assert results["LOAD teststore://b/missing"] == head.format("missing") + f"missing {shard!r}" + tail
    assert results["LOAD teststore://b/poisoned"].startswith(head.format("poisoned") + "truncated '.metadata'")
    assert results["LOAD teststore://b/poisoned_bare"] == (
        "UnsafeCheckpointError: Checkpoint 'teststore://b/poisoned_bare/.metadata' holds a Python object "
        "(posix.system) that loading with weights_only=True refuses: unpickling it could run code. Only tensors, "
        "containers and plain values load safely. If you trust the file, load it with weights_only=False."
    )
    attributes = dict(line.split(" ", 2)[1:] for line in run.output.splitlines() if line.startswith("ATTRIBUTES "))
    assert attributes["teststore://b/truncated"] == f"teststore://b/truncated mismatch [({shard!r}, 'truncated')]"
    assert attributes["teststore://b/missing"] == f"teststore://b/missing mismatch [({shard!r}, 'missing')]"
    weights = dict(line.split(" ")[1:] for line in run.output.splitlines() if line.startswith("WEIGHT "))
    assert weights.pop("teststore://b/ckpt") == "3.0"
    assert set(weights.values()) == {"-1.0"}  # every refused load left the model as it was

    # The payload is real: trusting the folder runs it.
    run_script(tmp_path, LOAD, "trusted", "teststore://b/poisoned_bare", env=_env(store))
    assert marker.exists()


@pytest.mark.timeout(300)
def test_a_save_that_dies_while_copying_into_place_is_named_and_the_next_save_cleans_up(tmp_path: Path) -> None:
    store = tmp_path / "store"
    url = "teststore://b/run/ckpt"
    assert run_script(tmp_path, SAVE, url, "1", env=_env(store)).returncode == 0
    crashed = run_script(tmp_path, SAVE, url, "2", env=_env(store, FABRIC_TEST_CRASH_BETWEEN_RENAMES="1"))
    assert crashed.returncode != 0 and "SAVED" not in crashed.output, crashed.output
    (staged,) = [p.name for p in (store / "b" / "run").iterdir() if p.name != "ckpt"]
    assert staged.startswith(".ckpt.fabric-staging-")
    staged_url = f"teststore://b/run/{staged}"

    run = run_script(tmp_path, LOAD, "default", url, staged_url, env=_env(store))
    assert run.returncode == 0, run.output
    results = dict(line.split(": ", 1) for line in run.output.splitlines() if line.startswith("LOAD "))
    assert results[f"LOAD {url}"] == (
        f"CheckpointError: fabric.load({url!r}): the checkpoint is missing: a save was interrupted while copying it "
        f"into place (or is copying it right now), and the complete checkpoint it was copying is beside it: "
        f"{staged_url!r}. Load that URL, or wait for a running save to finish and load again. Nothing was loaded."
    )
    assert results[f"LOAD {staged_url}"] == "OK step=2"

    assert run_script(tmp_path, SAVE, url, "3", env=_env(store)).returncode == 0
    assert sorted(p.name for p in (store / "b" / "run").iterdir()) == ["ckpt"]
    run = run_script(tmp_path, LOAD, "default", url, env=_env(store))
    assert f"LOAD {url}: OK step=3" in run.output, run.output


def test_unknown_and_uninstalled_protocols_and_chained_urls_say_what_to_do() -> None:
    with pytest.raises(
        ValueError,
        match=r"fabric\.save\('nosuch://x'\) with a sharded strategy: 'nosuch://x' uses the protocol 'nosuch', "
        "which fsspec does not know",
    ):
        sharded_checkpoint.check_target("nosuch://x")
    with pytest.raises(ValueError, match=r"'simplecache::memory://x' is a chained fsspec URL"):
        sharded_checkpoint.check_target("simplecache::memory://x")
    try:
        import s3fs  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"from the package 's3fs', which is not installed.*pip install s3fs"):
            sharded_checkpoint.check_target("s3://bucket/ckpt")
    else:
        pytest.skip("s3fs is installed here")


def test_a_url_under_a_folder_that_does_not_exist_is_simply_not_found() -> None:
    remote_directory.refuse_if_incomplete("memory://nowhere/deeper/ckpt", _OneProcess())  # nothing to name
    assert not sharded_checkpoint.is_sharded_checkpoint("memory://nowhere/deeper/ckpt")


def test_a_url_folder_that_is_not_a_checkpoint_is_never_replaced(tmp_path: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe_file("/notckpt/data.csv", b"a,b\n")
    try:
        with pytest.raises(IsADirectoryError, match=r"this URL is a folder that is not a checkpoint and not empty"):
            sharded_checkpoint.check_target("memory://notckpt")
    finally:
        fs.rm("/notckpt", recursive=True)


class _OneProcess:
    """The collectives of a run of one process (this test's own, which checks the store)."""

    is_global_zero = True
    world_size = 1

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        return obj

    def barrier(self, name: str | None = None) -> None:
        pass


@pytest.mark.timeout(300)
def test_a_save_to_a_url_killed_at_random_moments_leaves_a_loadable_or_named_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    url = "teststore://b/ckpt"
    monkeypatch.setenv(ROOT_VARIABLE, str(store))
    object_store.register(store)  # this process reads the store too
    prepare = (
        f"PATH = {url!r}\nfrom tests.helpers.object_store import register\nregister(os.environ[{ROOT_VARIABLE!r}])\n"
        "from fabric_core import Fabric\nfrom fabric_core.strategies.fsdp import FSDPStrategy\n" + MODEL
    )
    save = FILL + "fabric.save(PATH, {'model': model, 'step': step})\n"

    def check() -> str:
        folder, how = store / "b" / "ckpt", "in place"
        if not (folder / manifest.MANIFEST_FILE).is_file():
            with pytest.raises(CheckpointError, match="a save was interrupted while copying it into place") as raised:
                remote_directory.refuse_if_incomplete(url, _OneProcess())
            staged = re.search(r"beside it: 'teststore://b/([^']+)'", str(raised.value))
            assert staged is not None, raised.value
            folder, how = store / "b" / staged[1], "named its staged copy"
        manifest.verify(folder)  # the backing folder is a plain local DCP folder
        output = tmp_path / "consolidated.pt"
        sharded_checkpoint.consolidate(folder, output)
        checkpoint = torch.load(output, weights_only=True)
        _assert_consistent(checkpoint["model"], checkpoint["step"])
        return how

    env = {**_crash_env(), ROOT_VARIABLE: str(store)}
    with fork_server(tmp_path, prepare, FSDP_SETUP, save, env) as server:
        outcomes = server.trials(20, seed=14, longest=0.4, check=check)
    print(f"20 kills of a sharded save to a URL: {outcomes}")
    assert run_script(tmp_path, SAVE, url, "7", env=_env(store)).returncode == 0
    assert sorted(p.name for p in (store / "b").iterdir()) == ["ckpt"]  # every leftover removed
