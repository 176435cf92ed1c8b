"""Choosing the strategy by name, and what is refused before any process starts (in this process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fabric_core import Fabric
from torch.utils.data import DataLoader, TensorDataset

from fabric_deepspeed.config import DeepSpeedConfigError
from fabric_deepspeed.precision import DeepSpeedPrecision
from fabric_deepspeed.strategy import DeepSpeedStrategy


@pytest.fixture(autouse=True)
def _restore_ds_accelerator(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Selecting the strategy sets DS_ACCELERATOR for this process; keep it to the test.
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    yield


@pytest.mark.parametrize(
    ("name", "stage", "offload"),
    [
        ("deepspeed", 2, None),
        ("deepspeed_stage_1", 1, None),
        ("deepspeed_stage_2", 2, None),
        ("deepspeed_stage_3", 3, None),
        ("deepspeed_stage_1_offload", 1, "optimizer"),
        ("deepspeed_stage_2_offload", 2, "optimizer"),
        ("deepspeed_stage_3_offload", 3, "both"),
    ],
)
def test_names_select_one_class_with_their_settings(name: str, stage: int, offload: str | None) -> None:
    fabric = Fabric(accelerator="cpu", devices=2, strategy=name)
    strategy = fabric.strategy
    assert type(strategy) is DeepSpeedStrategy
    assert strategy.zero_stage == stage
    zero = strategy.config["zero_optimization"]
    assert ("offload_optimizer" in zero) == (offload is not None)
    assert ("offload_param" in zero) == (offload == "both")
    assert strategy.process_group_backend == "gloo" and strategy.num_processes == 2
    assert isinstance(fabric.strategy.precision, DeepSpeedPrecision)
    assert strategy.name == ("deepspeed_stage_2" if name == "deepspeed" else name)


def test_nvme_offload_settings() -> None:
    strategy = DeepSpeedStrategy(
        stage=3,
        offload_optimizer=True,
        offload_parameters=True,
        remote_device="nvme",
        offload_params_device="nvme",
        offload_optimizer_device="nvme",
        nvme_path="/tmp/nv",
    )
    zero = strategy.config["zero_optimization"]
    assert zero["offload_param"]["device"] == zero["offload_optimizer"]["device"] == "nvme"
    assert zero["offload_param"]["nvme_path"] == "/tmp/nv" and strategy.remote_device == "nvme"
    assert strategy.name == "deepspeed_stage_3_offload_nvme"


@pytest.mark.parametrize(("precision", "section"), [("32-true", None), ("bf16-mixed", "bf16"), ("bf16-true", "bf16")])
def test_precision_becomes_deepspeeds_own_config(precision: str, section: str | None) -> None:
    fabric = Fabric(accelerator="cpu", devices=2, strategy="deepspeed_stage_2", precision=precision)
    assert isinstance(fabric.strategy.precision, DeepSpeedPrecision)
    assert fabric.strategy.precision.precision == precision
    config = fabric.strategy.engine_config()
    for name in ("fp16", "bf16"):
        assert bool(config.get(name, {}).get("enabled")) == (name == section), config


@pytest.mark.parametrize("precision", ["16-mixed", "16-true"])
def test_float16_on_cpu_is_refused_naming_both_sides(precision: str) -> None:
    with pytest.raises(ValueError) as info:
        Fabric(accelerator="cpu", devices=2, strategy="deepspeed_stage_2", precision=precision)
    message = str(info.value)
    assert f"precision={precision!r} cannot run with strategy='deepspeed_stage_2' on accelerator='cpu'" in message
    assert "DeepSpeed refuses float16 on the CPU" in message and "bf16-mixed" in message


def test_a_precision_deepspeed_does_not_have_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"precision='64-true' \(DoublePrecision\) cannot run with strategy='deepspeed"
    ):
        Fabric(accelerator="cpu", devices=2, strategy="deepspeed", precision="64-true")


def test_config_contradicting_precision_is_refused_at_selection(tmp_path: Path) -> None:
    config = {"bf16": {"enabled": True}, "zero_optimization": {"stage": 2}}
    with pytest.raises(DeepSpeedConfigError, match=r"bf16.enabled=true, but Fabric runs with precision='32-true'"):
        Fabric(accelerator="cpu", devices=2, strategy=DeepSpeedStrategy(config=config), precision="32-true")
    # "auto" follows precision=; the file named by Lightning's variable is read.
    (tmp_path / "ds.json").write_text(json.dumps({"bf16": {"enabled": "auto"}, "zero_optimization": {"stage": 3}}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PL_DEEPSPEED_CONFIG_PATH", str(tmp_path / "ds.json"))
        fabric = Fabric(accelerator="cpu", devices=2, strategy="deepspeed", precision="bf16-mixed")
    assert fabric.strategy.zero_stage == 3
    assert fabric.strategy.engine_config()["bf16"] == {"enabled": True}


def test_ds_accelerator_for_another_device_is_refused_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DS_ACCELERATOR", "cuda")
    with pytest.raises(ValueError, match=r"accelerator='cpu'.*DS_ACCELERATOR=cuda"):
        Fabric(accelerator="cpu", devices=2, strategy="deepspeed")


def test_micro_batch_size_comes_from_the_dataloader() -> None:
    fabric = Fabric(accelerator="cpu", devices=2, strategy="deepspeed")
    assert fabric.strategy.engine_config()["train_micro_batch_size_per_gpu"] == 1
    fabric.strategy.process_dataloader(DataLoader(TensorDataset(torch.zeros(10, 2)), batch_size=5))
    assert fabric.strategy.engine_config()["train_micro_batch_size_per_gpu"] == 5


def test_nvme_offload_without_async_io_is_refused_with_the_fix() -> None:
    import deepspeed.ops

    if deepspeed.ops.__compatible_ops__.get("async_io", False):
        pytest.skip("DeepSpeed's async_io extension can be built here, so NVMe offload is allowed")
    with pytest.raises(RuntimeError, match=r"offloads to NVMe.*libaio.*strategy='deepspeed_stage_3_offload'"):
        Fabric(accelerator="cpu", devices=2, strategy="deepspeed_stage_3_offload_nvme")
