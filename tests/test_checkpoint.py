"""fabric.save / fabric.load / fabric.load_raw on one device: semantics, safety, atomicity."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from fabric_core import Fabric
from fabric_core.checkpoint_io import CheckpointError
from tests.helpers.models import make_data, make_mlp


class Counter:
    """A stateful object that is neither a module nor an optimizer."""

    def __init__(self) -> None:
        self.count = 0

    def state_dict(self) -> dict[str, int]:
        return {"count": self.count}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.count = state["count"]


class Opaque:
    """A plain Python class: loading it needs weights_only=False."""

    def __init__(self, value: int) -> None:
        self.value = value


def _trained(fabric: Fabric, steps: int = 3) -> tuple[Any, Any]:
    model = make_mlp()
    model, optimizer = fabric.setup(model, torch.optim.Adam(model.parameters(), lr=1e-2))
    for inputs, targets in make_data(steps):
        fabric.backward(nn.functional.mse_loss(model(inputs), targets))
        optimizer.step()
        optimizer.zero_grad()
    return model, optimizer


def test_save_and_load_round_trip_restores_live_objects_and_returns_the_rest(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu")
    model, optimizer = _trained(fabric)
    counter = Counter()
    counter.count = 7
    path = tmp_path / "nested" / "ckpt.pt"
    fabric.save(
        path,
        {"model": model, "optimizer": optimizer, "counter": counter, "step": 3, "meta": {"a": [1, 2.5, "x"]}},
    )
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # no temporary file left behind

    # The file is a plain dict without wrapper prefixes that torch.load reads safely.
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"model", "optimizer", "counter", "step", "meta"}
    assert "0.weight" in raw["model"]

    fresh_model, fresh_optimizer = _trained(Fabric(accelerator="cpu"), steps=0)
    new_counter = Counter()
    state = {"model": fresh_model, "optimizer": fresh_optimizer, "counter": new_counter, "step": 0}
    remainder = Fabric(accelerator="cpu").load(path, state)
    assert remainder == {"meta": {"a": [1, 2.5, "x"]}}
    assert state["step"] == 3  # plain values are updated in place
    assert state["model"] is fresh_model  # live objects stay the same objects
    assert new_counter.count == 7
    for expected, actual in zip(model.state_dict().values(), fresh_model.state_dict().values(), strict=True):
        assert torch.equal(expected, actual)
    assert fresh_optimizer.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]


def test_training_continues_identically_after_a_reload(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu")
    model, optimizer = _trained(fabric)
    fabric.save(tmp_path / "c.pt", {"model": model, "optimizer": optimizer})
    inputs, targets = make_data(1, seed=9)[0]

    def next_losses(model: Any, optimizer: Any) -> list[float]:
        losses = []
        for _ in range(3):
            loss = nn.functional.mse_loss(model(inputs), targets)
            fabric.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        return losses

    resumed_model, resumed_optimizer = _trained(fabric, steps=0)
    fabric.load(tmp_path / "c.pt", {"model": resumed_model, "optimizer": resumed_optimizer})
    assert next_losses(resumed_model, resumed_optimizer) == next_losses(model, optimizer)


def test_load_without_state_returns_everything(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu")
    fabric.save(tmp_path / "c.pt", {"x": torch.arange(3), "epoch": 2})
    checkpoint = fabric.load(tmp_path / "c.pt")
    assert checkpoint["epoch"] == 2 and torch.equal(checkpoint["x"], torch.arange(3))


def test_strict_loading(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu")
    fabric.save(tmp_path / "c.pt", {"model": make_mlp(), "epoch": 1})
    with pytest.raises(KeyError, match=r"keys \['missing'\] that the checkpoint .*c.pt.* does not have.*strict=False"):
        fabric.load(tmp_path / "c.pt", {"model": make_mlp(), "missing": 0})
    state = {"model": make_mlp(), "missing": 0}
    assert fabric.load(tmp_path / "c.pt", state, strict=False) == {"epoch": 1}
    assert state["missing"] == 0

    bigger = nn.Sequential(*make_mlp(), nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="Missing key"):
        fabric.load(tmp_path / "c.pt", {"model": bigger})
    fabric.load(tmp_path / "c.pt", {"model": bigger}, strict=False)


def test_filter_chooses_entries(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu")
    model = fabric.setup(make_mlp())
    fabric.save(
        tmp_path / "c.pt",
        {"model": model, "step": 1},
        filter={"model": lambda key, _: key.endswith("weight")},
    )
    saved = torch.load(tmp_path / "c.pt", weights_only=True)
    assert saved["model"] and all(key.endswith("weight") for key in saved["model"])

    with pytest.raises(TypeError, match="expects a dict of key to function"):
        fabric.save(tmp_path / "c.pt", {"model": model}, filter=[lambda k, v: True])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"names keys \['other'\] that are not in state"):
        fabric.save(tmp_path / "c.pt", {"model": model}, filter={"other": lambda k, v: True})
    with pytest.raises(TypeError, match="expected a function"):
        fabric.save(tmp_path / "c.pt", {"model": model}, filter={"model": 3})  # type: ignore[dict-item]
    # A filter on a plain value is ignored, as in Lightning, but never silently.
    with pytest.warns(UserWarning, match=r"filter=\{'step': ...\}\) is ignored: .* state\['step'\] is a plain int"):
        fabric.save(tmp_path / "c.pt", {"step": 1, "model": model}, filter={"step": lambda k, v: False})
    assert torch.load(tmp_path / "c.pt", weights_only=True)["step"] == 1


def test_load_raw_into_model_and_optimizer(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu")
    model, optimizer = _trained(fabric)
    torch.save(model.module.state_dict(), tmp_path / "model.pt")
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
    fresh_model, fresh_optimizer = _trained(Fabric(accelerator="cpu"), steps=0)
    fabric.load_raw(tmp_path / "model.pt", fresh_model)
    fabric.load_raw(tmp_path / "optimizer.pt", fresh_optimizer)
    assert torch.equal(fresh_model.state_dict()["0.weight"], model.state_dict()["0.weight"])
    assert fresh_optimizer.state_dict()["state"][0]["step"] == 3
    plain = make_mlp()
    fabric.load_raw(tmp_path / "model.pt", plain)  # an unwrapped model works too
    with pytest.raises(TypeError, match="obj must be a model or an optimizer"):
        fabric.load_raw(tmp_path / "model.pt", {"a": 1})  # type: ignore[arg-type]


def test_weights_only_by_default_and_explicit_opt_out(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu")
    fabric.save(tmp_path / "c.pt", {"thing": Opaque(5)})
    with pytest.raises(
        CheckpointError,
        match=r"c.pt.*Python object \(tests.test_checkpoint.Opaque\).*weights_only=True refuses.*weights_only=False",
    ):
        fabric.load(tmp_path / "c.pt")
    assert fabric.load(tmp_path / "c.pt", weights_only=False)["thing"].value == 5


def test_missing_corrupt_and_truncated_files_name_the_path(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu")
    with pytest.raises(FileNotFoundError, match=r"Checkpoint file not found: .*nope.pt"):
        fabric.load(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        fabric.load_raw(tmp_path / "nope.pt", make_mlp())

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(os.urandom(2048))
    with pytest.raises(CheckpointError, match=r"corrupt.pt.*2048 bytes.*corrupt or truncated") as raised:
        fabric.load(corrupt)
    assert (raised.value.path, raised.value.reason) == (corrupt, "corrupt")

    good = tmp_path / "good.pt"
    fabric.save(good, {"model": make_mlp(width=64), "step": 1})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated.pt.*corrupt or truncated") as raised:
        fabric.load(str(truncated))
    assert (raised.value.path, raised.value.reason) == (truncated, "corrupt")

    with pytest.raises(IsADirectoryError, match="is a directory"):
        fabric.load(tmp_path)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list, not a dict.*load_raw") as raised:
        fabric.load(tmp_path / "list.pt")
    assert (raised.value.path, raised.value.reason) == (tmp_path / "list.pt", "not-a-dict")
    with pytest.raises(TypeError, match="state must be a dict"):
        fabric.load(good, make_mlp())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="state must be a dict"):
        fabric.save(good, [1])  # type: ignore[arg-type]


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu")
    path = tmp_path / "c.pt"
    fabric.save(path, {"step": 1})
    with pytest.raises(Exception, match="pickle|local object"):
        fabric.save(path, {"step": 2, "bad": lambda: None})  # a lambda cannot be pickled
    assert fabric.load(path) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, torch
    from fabric_core import Fabric
    fabric = Fabric(accelerator="cpu")
    big = {f"t{i}": torch.randn(1024, 1024) for i in range(64)}  # 256 MiB
    print("ready", flush=True)
    while True:
        fabric.save(sys.argv[1], {"version": 2, "big": big})
    """
)


def test_a_process_killed_mid_save_never_leaves_a_half_written_file(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    Fabric(accelerator="cpu").save(path, {"version": 1})
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        time.sleep(0.4)  # well inside the first 256 MiB write
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    # Whatever moment the kill hit, the path holds a complete checkpoint: the old or a new one.
    checkpoint = Fabric(accelerator="cpu").load(path)
    assert checkpoint["version"] in (1, 2)
    if checkpoint["version"] == 2:
        assert len(checkpoint["big"]) == 64
