"""log_model: the checkpoints fabric.save wrote, as artifacts of the run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from fabric_core import Fabric

from fabric_mlflow import MLFlowLogger

OpenStore = Callable[[str | Path], Any]


def _download(logger: MLFlowLogger, artifact: str, tmp_path: Path) -> dict[str, Any]:
    """The checkpoint stored as ``artifact``, downloaded through MLflow and loaded."""
    target = tmp_path / "downloaded"
    target.mkdir(exist_ok=True)
    local = logger.experiment.download_artifacts(logger.run_id, artifact, str(target))
    return torch.load(local, weights_only=True)  # type: ignore[no-any-return]


def _weights(state: dict[str, Any]) -> torch.Tensor:
    return state["model"]["weight"]


def test_log_model_true_logs_the_last_version_of_each_checkpoint_when_the_run_ends(
    save_dir: Path, tmp_path: Path, store: OpenStore
) -> None:
    logger = MLFlowLogger(save_dir=save_dir, log_model=True)
    fabric = Fabric(accelerator="cpu", loggers=[logger])
    saved: dict[str, torch.Tensor] = {}

    def train(fabric: Fabric) -> None:
        model = torch.nn.Linear(3, 1)
        model = fabric.setup(model)
        for step in range(3):
            with torch.no_grad():
                model.weight.fill_(float(step))
            fabric.save(tmp_path / "last.ckpt", {"model": model, "step": step})  # the same file, three times
        fabric.save(tmp_path / "checkpoints" / "best.ckpt", {"model": model, "step": 2})
        saved["last"] = model.weight.detach().clone()
        assert store(save_dir).artifacts(logger.run_id) == []  # nothing before the run ends

    fabric.launch(train)

    assert store(save_dir).artifacts(logger.run_id) == [
        "model/checkpoints/best/best.ckpt",
        "model/checkpoints/last/last.ckpt",
    ]
    last = _download(logger, "model/checkpoints/last/last.ckpt", tmp_path)
    assert last["step"] == 2 and torch.equal(_weights(last), saved["last"])


def test_log_model_all_logs_each_checkpoint_when_it_is_written(
    save_dir: Path, tmp_path: Path, store: OpenStore
) -> None:
    logger = MLFlowLogger(save_dir=save_dir, log_model="all", checkpoint_path_prefix="run-a/")
    fabric = Fabric(accelerator="cpu", loggers=[logger])
    fabric.launch()
    model = fabric.setup(torch.nn.Linear(3, 1))
    fabric.save(tmp_path / "step-1.ckpt", {"model": model, "step": 1})
    assert store(save_dir).artifacts(logger.run_id) == ["run-a/model/checkpoints/step-1/step-1.ckpt"]
    assert _download(logger, "run-a/model/checkpoints/step-1/step-1.ckpt", tmp_path)["step"] == 1
    fabric.save(tmp_path / "step-2.ckpt", {"model": model, "step": 2})
    fabric.save(tmp_path / "step-1.ckpt", {"model": model, "step": 3})  # the same path again: replaced
    assert _download(logger, "run-a/model/checkpoints/step-1/step-1.ckpt", tmp_path)["step"] == 3
    logger.finalize("success")
    assert store(save_dir).artifacts(logger.run_id) == [
        "run-a/model/checkpoints/step-1/step-1.ckpt",
        "run-a/model/checkpoints/step-2/step-2.ckpt",
    ]


def test_without_log_model_no_checkpoint_is_logged(save_dir: Path, tmp_path: Path, store: OpenStore) -> None:
    logger = MLFlowLogger(save_dir=save_dir)
    fabric = Fabric(accelerator="cpu", loggers=[logger])

    def train(fabric: Fabric) -> None:
        fabric.save(tmp_path / "last.ckpt", {"model": fabric.setup(torch.nn.Linear(3, 1))})

    fabric.launch(train)
    assert (tmp_path / "last.ckpt").is_file()
    assert store(save_dir).artifacts(logger.run_id) == []


def test_a_checkpoint_removed_before_the_end_is_named_in_a_warning(
    save_dir: Path, tmp_path: Path, store: OpenStore
) -> None:
    logger = MLFlowLogger(save_dir=save_dir, log_model=True)
    fabric = Fabric(accelerator="cpu", loggers=[logger])
    fabric.launch()
    model = fabric.setup(torch.nn.Linear(3, 1))
    fabric.save(tmp_path / "old.ckpt", {"model": model})
    fabric.save(tmp_path / "kept.ckpt", {"model": model})
    (tmp_path / "old.ckpt").unlink()
    with pytest.warns(UserWarning, match=r"log_model=True\) did not log checkpoint '.*old.ckpt': it is gone"):
        logger.finalize("success")
    assert store(save_dir).artifacts(logger.run_id) == ["model/checkpoints/kept/kept.ckpt"]
    assert store(save_dir).status(logger.run_id) == "FINISHED"
