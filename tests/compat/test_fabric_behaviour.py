"""Lightning Fabric's documented behaviour of the Fabric object itself, after the rename.

Wrappers (``.device``, ``.dtype``, unwrapping), callbacks (keyword filtering, the
Lightning-named methods, LightningModule-style models), duck-typed loggers and their final
status, checkpoints (``weights_only=None``, ``load_raw``, filters on plain values) and the
exception types users catch. Written from Lightning's docs, not its tests.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from fabric_core import Fabric, is_wrapped
from fabric_core.wrappers import (
    _FabricDataLoader,
    _FabricModule,
    _FabricOptimizer,
    _unwrap_compiled,
    _unwrap_objects,
)
from tests.helpers.processes import ROOT

# -- wrappers -------------------------------------------------------------------------------------


def test_the_module_wrapper_has_device_and_dtype() -> None:
    fabric = Fabric(accelerator="cpu", precision="bf16-true")
    with fabric.init_module():
        model = nn.Linear(2, 2)
    wrapped = fabric.setup(model)
    assert isinstance(wrapped, _FabricModule)
    assert wrapped.device == torch.device("cpu")
    assert wrapped.dtype == torch.bfloat16
    assert Fabric(accelerator="cpu").setup(nn.ReLU()).dtype == torch.get_default_dtype()  # no parameters


def test_unwrapping_objects_and_collections() -> None:
    fabric = Fabric(accelerator="cpu")
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(range(4))
    wrapped_model, wrapped_optimizer = fabric.setup(model, optimizer)
    wrapped_loader = fabric.setup_dataloaders(loader)
    assert isinstance(wrapped_optimizer, _FabricOptimizer) and isinstance(wrapped_loader, _FabricDataLoader)
    assert all(is_wrapped(obj) for obj in (wrapped_model, wrapped_optimizer, wrapped_loader))
    unwrapped = _unwrap_objects({"model": wrapped_model, "rest": [wrapped_optimizer, (wrapped_loader, 3)]})
    assert unwrapped["model"] is model
    assert unwrapped["rest"][0] is optimizer
    assert unwrapped["rest"][1] == (loader, 3)
    assert _unwrap_compiled(model) == (model, None)


# -- callbacks ----------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_train_start(self, epoch: int) -> None:  # takes fewer keywords than given
        self.events.append(("train_start", epoch))

    def on_anything(self, **kwargs: Any) -> None:  # takes them all
        self.events.append(("anything", sorted(kwargs)))

    def on_after_setup(self, fabric: Fabric, module: nn.Module) -> None:
        self.events.append(("after_setup", type(module).__name__))

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.events.append(("before_step", type(optimizer).__name__))

    def on_after_optimizer_step(self, strategy: Any, optimizer: torch.optim.Optimizer) -> None:
        self.events.append(("after_step", type(strategy).__name__))


def test_call_passes_only_the_keywords_a_method_accepts_and_lightning_methods_fire() -> None:
    recorder = Recorder()
    fabric = Fabric(accelerator="cpu", callbacks=[recorder])
    assert fabric.callbacks == [recorder]
    fabric.call("on_train_start", epoch=3, unused="ignored")
    fabric.call("on_anything", a=1, b=2)
    model = nn.Linear(2, 1)
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.1))
    fabric.backward(model(torch.ones(1, 2)).sum())
    optimizer.step()
    assert recorder.events == [
        ("train_start", 3),
        ("anything", ["a", "b"]),
        ("after_setup", "FabricModule"),
        ("before_step", "SGD"),
        ("after_step", "SingleDeviceStrategy"),
    ]


class LitStyle(nn.Module):
    """What a LightningModule looks like to Fabric: ``_fabric`` and ``_fabric_optimizers``, hooks, self.log."""

    def __init__(self) -> None:
        super().__init__()
        self._fabric: Fabric | None = None
        self._fabric_optimizers: list[Any] = []
        self.layer = nn.Linear(2, 1)
        self.events: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    def training_step(self, batch: torch.Tensor) -> torch.Tensor:
        loss = self(batch).sum()
        self.log("loss", loss)
        return loss

    # The parts of LightningModule that reach Fabric:
    def log(self, name: str, value: Any) -> None:
        assert self._fabric is not None
        self._fabric.log(name, value)

    @property
    def logger(self) -> Any:
        assert self._fabric is not None
        return self._fabric.logger

    def optimizers(self) -> Any:
        return self._fabric_optimizers[0] if len(self._fabric_optimizers) == 1 else self._fabric_optimizers

    def on_train_start(self) -> None:
        self.events.append("on_train_start")


def test_a_lightning_style_module_is_connected_to_fabric() -> None:
    logger = Mock()
    fabric = Fabric(accelerator="cpu", loggers=[logger])
    module = LitStyle()
    model, optimizer = fabric.setup(module, torch.optim.SGD(module.parameters(), lr=0.1))
    assert module._fabric is fabric
    assert module.optimizers() is optimizer
    assert module.logger is logger
    assert fabric.callbacks == [module]  # the module became a callback
    fabric.call("on_train_start")
    assert module.events == ["on_train_start"]
    loss = model.training_step(torch.ones(1, 2))
    logger.log_metrics.assert_called_once_with(metrics={"loss": loss.item()}, step=None)
    fabric.setup(LitStyle())  # a second model is added, the first stays
    assert len(fabric.callbacks) == 2


# -- loggers ------------------------------------------------------------------------------------


def test_loggers_are_duck_typed_and_finalized_with_the_run_status() -> None:
    mock = Mock()

    class Plain:  # no base class: log_metrics and log_hyperparams are enough
        def __init__(self) -> None:
            self.rows: list[tuple[dict, int | None]] = []

        def log_metrics(self, metrics: dict, step: int | None = None) -> None:
            self.rows.append((metrics, step))

        def log_hyperparams(self, params: Any) -> None: ...

    plain = Plain()
    fabric = Fabric(accelerator="cpu", loggers=[mock, plain])
    assert fabric.loggers == [mock, plain] and fabric.logger is mock
    fabric.log("x", torch.tensor(2.0), step=4)
    assert plain.rows == [({"x": 2.0}, 4)]
    mock.log_metrics.assert_called_once_with(metrics={"x": 2.0}, step=4)

    def train(fabric: Fabric) -> None:
        raise RuntimeError("the run fails")

    with pytest.raises(RuntimeError, match="the run fails"):
        fabric.launch(train)
    mock.finalize.assert_called_once_with("failed")


def test_something_that_is_no_logger_is_refused() -> None:
    with pytest.raises(TypeError, match=r"got 'int', which is not a logger: expected a fabric_core.loggers.Logger"):
        Fabric(accelerator="cpu", loggers=[3])


FAILING_SCRIPT = """
import sys
from fabric_core import Fabric
from fabric_core.loggers import Logger

class Status(Logger):
    name = "status"
    version = 0
    def log_metrics(self, metrics, step=None): pass
    def log_hyperparams(self, params, *args, **kwargs): pass
    def finalize(self, status):
        print(f"FINALIZED {status}", flush=True)

fabric = Fabric(accelerator="cpu", loggers=[Status()])
if sys.argv[1] == "fail":
    raise ValueError("boom")
"""


@pytest.mark.parametrize(("how", "status"), [("fail", "failed"), ("pass", "success")])
def test_a_plain_script_finalizes_its_loggers_with_the_status(tmp_path: Path, how: str, status: str) -> None:
    script = tmp_path / "script.py"
    script.write_text(FAILING_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), how],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "FABRIC_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin"},
    )
    assert f"FINALIZED {status}" in result.stdout, result.stdout + result.stderr


# -- checkpoints --------------------------------------------------------------------------------


def test_load_takes_weights_only_none_and_load_raw_its_arguments(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu")
    model = fabric.setup(nn.Linear(2, 2))
    fabric.save(tmp_path / "full.pt", {"model": model, "hparams": {"lr": 0.1}})
    assert fabric.load(tmp_path / "full.pt", {"model": model}, weights_only=None) == {"hparams": {"lr": 0.1}}

    torch.save(model.state_dict(), tmp_path / "raw.pt")
    other = fabric.setup(nn.Linear(2, 2))
    fabric.load_raw(tmp_path / "raw.pt", other, strict=True, weights_only=None)
    assert torch.equal(other.weight, model.weight)
    # Still safe by default: an arbitrary object needs an explicit weights_only=False.
    torch.save({"weight": torch.zeros(2, 2), "bias": torch.zeros(2), "x": argparse.Namespace()}, tmp_path / "obj.pt")
    with pytest.raises(Exception, match="weights_only"):
        fabric.load_raw(tmp_path / "obj.pt", other, strict=False)


def test_load_raw_fires_the_load_event(tmp_path: Path) -> None:
    class Seen:
        def __init__(self) -> None:
            self.paths: list[Path] = []

        def fabric_on_load_checkpoint(self, path: Path, checkpoint: dict) -> None:
            self.paths.append(path)

    seen = Seen()
    fabric = Fabric(accelerator="cpu", callbacks=[seen])
    model = fabric.setup(nn.Linear(2, 2))
    torch.save(model.state_dict(), tmp_path / "raw.pt")
    fabric.load_raw(tmp_path / "raw.pt", model)
    assert seen.paths == [tmp_path / "raw.pt"]


# -- the exception types users catch ------------------------------------------------------------


def test_exception_types_match_lightnings() -> None:
    fabric = Fabric(accelerator="cpu")
    model = fabric.setup(nn.Linear(2, 2))
    with pytest.raises(ValueError):
        fabric.setup(model)  # set up twice
    with pytest.raises(TypeError):
        fabric.launch(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fabric.setup_dataloaders(range(4))  # type: ignore[arg-type]


def test_loggers_and_callbacks_hear_events_in_the_order_given() -> None:
    heard: list[str] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        def log_metrics(self, metrics: dict, step: int | None = None) -> None:
            heard.append(f"log:{self.name}")

        def log_hyperparams(self, params: Any) -> None: ...

        def finalize(self, status: str) -> None:
            heard.append(f"finalize:{self.name}")

    class Callback:
        def __init__(self, name: str) -> None:
            self.name = name

        def fabric_on_teardown(self, status: str) -> None:
            heard.append(f"teardown:{self.name}")

    fabric = Fabric(accelerator="cpu", loggers=[Named("a"), Named("b")], callbacks=[Callback("c1"), Callback("c2")])
    fabric.log("x", 1.0)
    fabric.launch(lambda fabric: None)
    assert heard == ["log:a", "log:b", "teardown:c1", "teardown:c2", "finalize:a", "finalize:b"]


def test_a_lightning_style_precision_gets_its_backward_hooks_called() -> None:
    from fabric_core.plugins import Precision

    class Scaled(Precision):
        calls: list[str] = []

        def pre_backward(self, tensor: torch.Tensor, module: Any) -> torch.Tensor:
            self.calls.append("pre")
            return tensor * 2  # what backward runs on

        def post_backward(self, tensor: torch.Tensor, module: Any) -> torch.Tensor:
            self.calls.append("post")
            return tensor

    assert Scaled.has_backward_hooks and not Precision.has_backward_hooks
    fabric = Fabric(accelerator="cpu", plugins=[Scaled()])
    model = fabric.setup(nn.Linear(1, 1, bias=False))
    fabric.backward(model(torch.ones(1, 1)).sum())
    assert Scaled.calls == ["pre", "post"]
    assert model.weight.grad is not None and model.weight.grad.item() == 2.0
