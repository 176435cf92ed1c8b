"""Checkpoint and collective errors carry what they are about as attributes, read here from real failures.

Each test also checks that the message is the one users already see: the attributes are
added beside the text, never instead of it. Single-file checkpoints (corrupt, truncated,
code, protocol, not a dict) are checked where those scenarios already live, in
tests/test_checkpoint.py and tests/test_checkpoint_safety.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from fabric_core import Fabric
from fabric_core.errors import CheckpointError, CollectiveError
from fabric_core.strategies import collectives
from fabric_core.strategies.checkpoint_state import save_directory, verify_directory
from fabric_core.strategies.manifest import MANIFEST_FILE
from tests.helpers.processes import processes_with_marker, run_script

# -- a directory checkpoint that does not match its manifest --------------------------------------


def _save(path: Path) -> Fabric:
    """A directory checkpoint written as the sharded strategies write one (staged, manifest last)."""
    fabric = Fabric(accelerator="cpu")

    def write(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, size in (("a.bin", 300), ("b.bin", 10), ("c.bin", 20), ("d.bin", 30)):
            (folder / name).write_bytes(bytes(index * 7 % 256 for index in range(1, size + 1)))

    save_directory(path, write, fabric.strategy, "fsdp")
    return fabric


def test_a_mismatch_names_each_file_and_how_it_differs(tmp_path: Path) -> None:
    path = tmp_path / "ckpt"
    fabric = _save(path)
    (path / "a.bin").write_bytes(bytes(100))  # truncated
    (path / "b.bin").unlink()  # missing
    (path / "c.bin").write_bytes(bytes(20))  # same size, other bytes
    (path / "d.bin").write_bytes(bytes(40))  # longer
    (path / "notes.txt").write_text("mine")  # foreign

    with pytest.raises(CheckpointError) as raised:
        verify_directory(path, fabric.strategy)
    err = raised.value
    assert str(err) == (
        f"Checkpoint {str(path)!r} does not match its fabric_manifest.json: truncated 'a.bin' (100 of 300 bytes); "
        "missing 'b.bin'; changed 'c.bin' (its checksum differs from the saved one); longer than saved 'd.bin' "
        "(40 of 30 bytes); foreign 'notes.txt' (not written by the save). Nothing was loaded. Restore the directory "
        "from a backup or load an earlier checkpoint (remove a foreign file if you put it there)."
    )
    assert (err.path, err.reason) == (path, "mismatch")
    assert list(err.files.items()) == [
        ("a.bin", "truncated"),
        ("b.bin", "missing"),
        ("c.bin", "changed"),
        ("d.bin", "longer"),
        ("notes.txt", "foreign"),
    ]


def test_a_damaged_manifest_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "ckpt"
    fabric = _save(path)
    (path / MANIFEST_FILE).write_text('{"files": ')

    with pytest.raises(CheckpointError) as raised:
        verify_directory(path, fabric.strategy)
    assert str(raised.value) == (
        f"Checkpoint {str(path)!r} has a damaged fabric_manifest.json (JSONDecodeError: Expecting value: line 1 "
        "column 11 (char 10)), so its files cannot be checked. Restore it from a backup or load an earlier checkpoint."
    )
    assert (raised.value.path, raised.value.reason, raised.value.files) == (path, "corrupt", {})


def test_a_whole_directory_passes(tmp_path: Path) -> None:
    fabric = _save(tmp_path / "ckpt")
    verify_directory(tmp_path / "ckpt", fabric.strategy)  # the control: the files above were fine when saved


# -- collectives ------------------------------------------------------------------------------------


@pytest.fixture
def process_group(tmp_path: Path) -> Iterator[None]:
    """A real gloo process group of one: this test process, rank 0."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.usefixtures("process_group")
def test_a_collective_refused_on_this_rank_names_operation_and_rank_and_chains_the_cause() -> None:
    with pytest.raises(CollectiveError) as raised:
        # gloo refuses a bitwise reduction of floats on this rank: no other rank is to blame.
        collectives.all_reduce(torch.ones(1), reduce_op=dist.ReduceOp.BXOR)
    err = raised.value
    cause = err.__cause__
    assert isinstance(cause, RuntimeError) and "Cannot use ReduceOp.BXOR" in str(cause)
    assert str(err) == (
        "fabric.all_reduce(reduce_op=<RedOpType.BXOR: 7>) failed on rank 0: the call was refused on this rank, no "
        "other rank is involved: check its arguments (a rank that does not exist, a tensor of a shape or type the "
        f"operation does not take) ({str(cause).splitlines()[0]})."
    )
    assert (err.operation, err.rank, err.timed_out, err.missing_ranks) == ("all_reduce", 0, False, None)


@pytest.mark.usefixtures("process_group")
def test_a_broadcast_from_a_rank_that_does_not_exist_is_refused_before_the_process_group() -> None:
    with pytest.raises(ValueError) as raised:
        collectives.broadcast_object({"step": 1}, src=3)
    assert str(raised.value) == (
        "fabric.broadcast(src=3): there is no rank 3 in this run of 1 process (ranks 0 to 0). Pass the global rank "
        "of the process that holds the object."
    )


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("ProcessGroupGloo::broadcast: invalid root rank: 5", True),
        ("ProcessGroupGloo::allgather: invalid tensor size at index 0 (expected (2), got (1))", True),
        ("result type Float can't be cast to the desired output type Long", True),
        ("[gloo/transport/tcp/pair.cc:534] Read error [127.0.0.1]:4242: Connection reset by peer", False),
        ("[gloo/transport/tcp/pair.cc:589] Connection closed by peer [127.0.0.1]:4242", False),
        ("NCCL error: remote process exited or there was a network error, invalid usage", False),
        ("something no one has seen before", False),
    ],
)
def test_a_failure_is_blamed_on_this_rank_only_when_the_process_group_says_it_refused_the_call(
    text: str, refused: bool
) -> None:
    err = collectives.describe_failure("fabric.all_gather", RuntimeError(text))
    assert ("the call was refused on this rank" in str(err)) is refused, str(err)
    assert ("another rank probably failed or exited" in str(err)) is not refused, str(err)


SAVE_ON_ONE_RANK = """
import time
from datetime import timedelta
from fabric_core import Fabric
from fabric_core.errors import CollectiveError
from fabric_core.strategies.ddp import DDPStrategy

fabric = Fabric(accelerator="cpu", devices=2, strategy=DDPStrategy(checkpoint_sync_timeout=timedelta(seconds=3)))
fabric.launch()
if fabric.is_global_zero:
    try:
        fabric.save("checkpoint.pt", {"step": 1})  # wrong: every rank must call save
    except CollectiveError as err:
        cause = err.__cause__
        print("OUTER", err.operation, err.rank, err.timed_out, err.missing_ranks, flush=True)
        print("INNER", type(cause).__name__, cause.operation, cause.rank, cause.timed_out, flush=True)
        root = cause.__cause__
        print("ROOT", isinstance(root, RuntimeError) and not isinstance(root, CollectiveError), flush=True)
        raise
else:
    time.sleep(300)
"""


@pytest.mark.timeout(120)
def test_a_save_on_one_rank_names_the_save_the_rank_and_who_never_came(tmp_path: Path) -> None:
    run = run_script(tmp_path, SAVE_ON_ONE_RANK, timeout=90)
    assert run.returncode != 0
    assert "fabric.save('checkpoint.pt') was called on rank 0, but not every rank called it within 3s" in run.output
    assert "OUTER save 0 True (1,)" in run.output, run.output
    assert "INNER CollectiveError barrier 0 True" in run.output, run.output
    assert "ROOT True" in run.output, run.output  # torch's own error at the bottom of the chain
    time.sleep(0.5)
    assert processes_with_marker(run.marker) == []
