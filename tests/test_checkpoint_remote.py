"""Checkpoints and CSV logs at URLs through fsspec: memory://, file://, unknown and uninstalled protocols."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
import torch
from torch import nn

from fabric_core import Fabric
from fabric_core.checkpoint_io import CheckpointIO, UnsafeCheckpointError
from fabric_core.loggers.csv_logs import CSVLogger
from fabric_core.strategies import sharded_checkpoint, staging
from fabric_core.strategies.single_device import SingleDeviceStrategy
from fabric_core.utilities.remote_paths import as_checkpoint_path, is_remote


@pytest.fixture
def memory() -> Iterator[str]:
    """A fresh folder in fsspec's in-memory file system, removed afterwards."""
    root = f"memory://fabric-test-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_urls_keep_their_double_slash_and_file_urls_are_local_paths(tmp_path: Path) -> None:
    assert as_checkpoint_path("memory://a/b.pt") == "memory://a/b.pt"
    assert as_checkpoint_path("s3://bucket/key.pt") == "s3://bucket/key.pt"
    assert as_checkpoint_path(f"file://{tmp_path}/x.pt") == tmp_path / "x.pt"
    assert as_checkpoint_path("relative/x.pt") == Path("relative/x.pt")
    assert is_remote("memory://a") and is_remote(Path("s3://bucket/key"))  # Path() folded it to s3:/bucket/key
    assert not is_remote("file:///tmp/x") and not is_remote(tmp_path)


def test_fabric_save_and_load_round_trip_through_memory(memory: str) -> None:
    fabric = Fabric(accelerator="cpu", devices=1)
    model = nn.Linear(4, 2)
    url = f"{memory}/run/ckpt.pt"
    fabric.save(url, {"model": model, "step": 7})
    assert fsspec.filesystem("memory").isfile(url.split("://", 1)[1])

    fresh = nn.Linear(4, 2)
    state = {"model": fresh, "step": 0}
    assert fabric.load(url, state) == {}
    assert state["step"] == 7
    torch.testing.assert_close(fresh.weight, model.weight, rtol=0, atol=0)

    raw = nn.Linear(4, 2)
    with fsspec.open(f"{memory}/raw.pt", "wb") as file:
        torch.save(model.state_dict(), file)
    fabric.load_raw(f"{memory}/raw.pt", raw)
    torch.testing.assert_close(raw.weight, model.weight, rtol=0, atol=0)


def test_file_urls_are_saved_atomically_as_local_files(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu", devices=1)
    url = f"file://{tmp_path}/ckpt.pt"
    fabric.save(url, {"step": 1})
    fabric.save(url, {"step": 2})
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]  # replaced in place, no staging left
    assert staging.leftovers(tmp_path / "ckpt.pt") == []
    assert fabric.load(url) == {"step": 2}


def test_a_missing_remote_checkpoint_and_a_remote_directory_are_named(memory: str) -> None:
    io_ = CheckpointIO()
    with pytest.raises(FileNotFoundError, match=rf"Checkpoint file not found: '{memory}/nothing.pt'\. Check the URL\."):
        io_.load_checkpoint(f"{memory}/nothing.pt")
    io_.save_checkpoint({"a": 1}, f"{memory}/folder/file.pt")
    with pytest.raises(IsADirectoryError, match=r"is a directory, but this loads single-file checkpoints only\. A sha"):
        io_.load_checkpoint(f"{memory}/folder")
    with pytest.raises(IsADirectoryError, match="this URL is a directory"):
        io_.save_checkpoint({"a": 1}, f"{memory}/folder")


def test_a_remote_file_holding_code_is_refused_like_a_local_one(memory: str) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, ("echo PWNED",))

    buffer = io.BytesIO()
    torch.save({"note": Payload()}, buffer)
    with fsspec.open(f"{memory}/evil.pt", "wb") as file:
        file.write(buffer.getvalue())
    with pytest.raises(UnsafeCheckpointError, match=r"holds a Python object \(posix\.system\)"):
        CheckpointIO().load_checkpoint(f"{memory}/evil.pt")


def test_an_unknown_protocol_and_an_uninstalled_one_say_what_to_do() -> None:
    with pytest.raises(ValueError, match=r"'nosuch://x\.pt' uses the protocol 'nosuch', which fsspec does not know"):
        CheckpointIO().save_checkpoint({"a": 1}, "nosuch://x.pt")
    pytest.importorskip("fsspec.registry")
    try:
        import s3fs  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"from the package 's3fs', which is not installed.*pip install s3fs"):
            CheckpointIO().load_checkpoint("s3://bucket/ckpt.pt")
    else:
        pytest.skip("s3fs is installed here")


def test_a_url_folded_by_path_is_refused_and_single_file_strategies_do_not_recover_urls() -> None:
    with pytest.raises(ValueError, match=r"'memory:/x' looks like the URL 'memory://x' passed through pathlib\.Path"):
        sharded_checkpoint.target_path(Path("memory://x"), "fabric.save(...)")
    strategy = SingleDeviceStrategy(torch.device("cpu"))
    with pytest.raises(NotImplementedError, match="Copy the checkpoint to a local or mounted path"):
        strategy.recover_checkpoint("s3://bucket/ckpt")


def test_consolidate_names_a_url_and_says_to_copy_it_down(tmp_path: Path) -> None:
    for directory in ("memory://run/ckpt", Path("memory://run/ckpt")):  # the CLI passes a Path
        with pytest.raises(ValueError, match=r"fabric consolidate 'memory://run/ckpt': .*fs\.get\(url, local_dir"):
            sharded_checkpoint.consolidate(directory, tmp_path / "out.pt")


def test_the_csv_logger_writes_to_memory(memory: str) -> None:
    logger = CSVLogger(root_dir=memory, name="exp")
    assert logger.version == 0
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.save()
    logger.log_metrics({"loss": 0.5, "acc": 0.9}, step=1)  # a new column: the file is rewritten wider
    logger.save()
    fs = fsspec.filesystem("memory")
    folder = f"{memory}/exp/version_0".split("://", 1)[1]
    assert fs.cat(f"{folder}/metrics.csv").decode().splitlines() == ["acc,loss,step", ",1.0,0", "0.9,0.5,1"]
    assert fs.cat(f"{folder}/hparams.yaml").decode() == "lr: 0.1\n"
    assert CSVLogger(root_dir=memory, name="exp").version == 1


def test_the_csv_logger_names_an_unknown_protocol() -> None:
    with pytest.raises(ValueError, match=r"CSVLogger\(root_dir='nosuch://logs'\): .* which fsspec does not know"):
        CSVLogger(root_dir="nosuch://logs")
