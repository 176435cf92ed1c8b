"""log_model: checkpoints written by fabric.save uploaded as W&B artifacts, read back from the run file.

An offline run records each artifact in its run file, with a manifest of its files and their
MD5 digests, and keeps a copy of each file for ``wandb sync`` to upload later.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from fabric_core import Fabric

from fabric_wandb import WandbLogger

Runs = Callable[[str | Path], Any]


def md5(path: Path) -> str:
    """A file's digest as a W&B manifest writes it (base64 of the MD5)."""
    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()


def train_and_save(fabric: Fabric, folder: Path, saves: list[str]) -> dict[str, str]:
    """Save a model to each name of ``saves`` in turn (a name may repeat); each file's digest right after."""
    model = fabric.setup(torch.nn.Linear(3, 1))
    digests = {}
    for index, name in enumerate(saves):
        with torch.no_grad():
            model.weight.fill_(float(index))  # each save different
        fabric.save(folder / name, {"model": model, "index": index})
        digests[f"{name}@{index}"] = md5(folder / name)
        fabric.log("index", index, step=index)
    return digests


def test_log_model_true_uploads_each_path_once_when_the_run_succeeds(tmp_path: Path, run_file: Runs) -> None:
    logger = WandbLogger(save_dir=tmp_path, log_model=True)
    fabric = Fabric(accelerator="cpu", loggers=logger)
    digests = fabric.launch(lambda fabric: train_and_save(fabric, tmp_path, ["a.ckpt", "b.ckpt", "a.ckpt"]))
    run = run_file(logger.log_dir)
    artifacts = run.artifacts()
    # b.ckpt, then a.ckpt with its last content: the order of the last save of each path.
    expected = (f"model-{logger.version}", "model", ["latest"])
    assert [(artifact.name, artifact.type, list(artifact.aliases)) for artifact in artifacts] == [expected] * 2
    contents = [(entry.path, entry.digest) for artifact in artifacts for entry in artifact.manifest.contents]
    assert contents == [("b.ckpt", digests["b.ckpt@1"]), ("a.ckpt", digests["a.ckpt@2"])]
    metadata = [json.loads(artifact.metadata) for artifact in artifacts]
    assert metadata == [{"original_filename": "b.ckpt"}, {"original_filename": "a.ckpt"}]
    assert run.exit_code() == 0


def test_log_model_all_uploads_every_save_as_it_is_written(tmp_path: Path, run_file: Runs) -> None:
    logger = WandbLogger(save_dir=tmp_path, log_model="all", checkpoint_name="tiny-linear")
    fabric = Fabric(accelerator="cpu", loggers=logger)

    def train(fabric: Fabric) -> dict[str, str]:
        digests = train_and_save(fabric, tmp_path, ["last.ckpt", "last.ckpt"])
        (tmp_path / "last.ckpt").unlink()  # gone by the end of the run: it was uploaded already
        return digests

    digests = fabric.launch(train)
    artifacts = run_file(logger.log_dir).artifacts()
    assert [artifact.name for artifact in artifacts] == ["tiny-linear", "tiny-linear"]
    contents = [(entry.path, entry.digest) for artifact in artifacts for entry in artifact.manifest.contents]
    assert contents == [("last.ckpt", digests["last.ckpt@0"]), ("last.ckpt", digests["last.ckpt@1"])]


def test_a_checkpoint_folder_is_uploaded_with_its_files(tmp_path: Path, run_file: Runs) -> None:
    logger = WandbLogger(save_dir=tmp_path, log_model="all")
    fabric = Fabric(accelerator="cpu", loggers=logger)
    folder = tmp_path / "sharded"
    (folder / "shards").mkdir(parents=True)
    (folder / "shards" / "0.distcp").write_bytes(b"rank 0")
    (folder / "meta.pt").write_bytes(b"meta")
    logger._upload_checkpoint(folder)  # what the hook does once a sharded save put its folder in place
    logger.finalize("success")
    (artifact,) = run_file(logger.log_dir).artifacts()
    assert sorted(entry.path for entry in artifact.manifest.contents) == ["sharded/meta.pt", "sharded/shards/0.distcp"]
    assert fabric.loggers == [logger]


def test_log_model_false_uploads_nothing(tmp_path: Path, run_file: Runs) -> None:
    logger = WandbLogger(save_dir=tmp_path)
    fabric = Fabric(accelerator="cpu", loggers=logger)
    fabric.launch(lambda fabric: train_and_save(fabric, tmp_path, ["a.ckpt"]))
    assert run_file(logger.log_dir).artifacts() == []
    assert (tmp_path / "a.ckpt").is_file()


def test_a_checkpoint_deleted_before_the_end_is_named_in_a_warning(tmp_path: Path, run_file: Runs) -> None:
    logger = WandbLogger(save_dir=tmp_path, log_model=True)
    fabric = Fabric(accelerator="cpu", loggers=logger)

    def train(fabric: Fabric) -> None:
        train_and_save(fabric, tmp_path, ["old.ckpt", "new.ckpt"])
        (tmp_path / "old.ckpt").unlink()

    with pytest.warns(UserWarning, match=r"log_model=True\) did not upload the checkpoint '.*old.ckpt': it is not"):
        fabric.launch(train)
    (artifact,) = run_file(logger.log_dir).artifacts()
    assert [entry.path for entry in artifact.manifest.contents] == ["new.ckpt"]


def test_a_failing_save_uploads_nothing_and_raises_its_own_error(tmp_path: Path, run_file: Runs) -> None:
    logger = WandbLogger(save_dir=tmp_path, log_model="all")
    fabric = Fabric(accelerator="cpu", loggers=logger)
    fabric.log("x", 1, step=0)
    with pytest.raises(Exception, match=r"lambda"):  # pickle's own error, through the logger's wrapper
        fabric.save(tmp_path / "x.ckpt", {"function": lambda: 1})
    logger.finalize("success")
    assert run_file(logger.log_dir).artifacts() == []
    assert not (tmp_path / "x.ckpt").exists()
