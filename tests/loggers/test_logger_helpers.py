"""The helpers fabric_core.loggers.logger offers logger add-ons (TensorBoard and MLflow use them)."""

from __future__ import annotations

from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path

from fabric_core.loggers.logger import flatten_params, next_version


@dataclass
class Optim:
    lr: float
    betas: tuple[float, float]


def test_flatten_params_joins_nested_keys() -> None:
    params = {
        "optimizer": Optim(lr=0.1, betas=(0.9, 0.99)),
        "data": Namespace(path="/data", loader={"workers": 4}),
        "seed": 7,
        3: "int key",
        "empty": {},
    }
    assert flatten_params(params) == {
        "optimizer/lr": 0.1,
        "optimizer/betas": (0.9, 0.99),  # a tuple is a value, not a level
        "data/path": "/data",
        "data/loader/workers": 4,
        "seed": 7,
        "3": "int key",
    }
    assert flatten_params(Namespace(a={"b": 1}), delimiter=".") == {"a.b": 1}
    assert flatten_params({"cls": Optim}) == {"cls": Optim}  # a dataclass type is kept, not expanded


def test_next_version_counts_version_folders_only(tmp_path: Path) -> None:
    assert next_version(tmp_path / "missing") == 0
    for name in ("version_0", "version_7", "version_x", "other"):
        (tmp_path / name).mkdir()
    (tmp_path / "version_9").write_text("a file, not a version")
    assert next_version(tmp_path) == 8
