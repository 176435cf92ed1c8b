"""Building the DeepSpeed config: defaults, a user's config, "auto" fields and conflicts (no deepspeed needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fabric_deepspeed.config import DeepSpeedConfigError, check_precision, load_config, resolve_config

LOSS_SCALING = {
    "loss_scale": 0,
    "initial_scale_power": 16,
    "loss_scale_window": 1000,
    "hysteresis": 2,
    "min_loss_scale": 1,
}
BUCKETS = {"allgather_bucket_size": 200_000_000, "reduce_bucket_size": 200_000_000}


def resolve(config: dict[str, Any], precision: str = "32-true", micro: int | None = None) -> dict[str, Any]:
    return resolve_config(
        config, precision=precision, micro_batch_size=micro, loss_scaling=LOSS_SCALING, zero_defaults=BUCKETS
    )


def test_fabric_fills_what_deepspeed_needs() -> None:
    resolved = resolve({"zero_optimization": {"stage": 2}})
    assert resolved["gradient_accumulation_steps"] == 1
    assert resolved["train_micro_batch_size_per_gpu"] == 1
    assert resolved["gradient_clipping"] == 0.0
    assert "fp16" not in resolved and "bf16" not in resolved
    assert resolve({}, micro=32)["train_micro_batch_size_per_gpu"] == 32  # from the dataloader


def test_auto_fields_get_fabrics_values() -> None:
    config = {
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "fp16": {"enabled": "auto", "loss_scale": "auto", "initial_scale_power": 8},
        "bf16": {"enabled": "auto"},
        "zero_optimization": {"stage": 3, "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto"},
    }
    resolved = resolve(config, precision="bf16-mixed", micro=8)
    assert "train_batch_size" not in resolved
    assert resolved["train_micro_batch_size_per_gpu"] == 8
    assert resolved["gradient_accumulation_steps"] == 1
    assert resolved["gradient_clipping"] == 0.0
    assert resolved["bf16"] == {"enabled": True}
    assert resolved["fp16"]["enabled"] is False
    assert resolved["zero_optimization"] == {"stage": 3, "reduce_bucket_size": 200_000_000}
    assert config["bf16"] == {"enabled": "auto"}  # the user's dict is not changed

    fp16 = resolve({"fp16": {"enabled": "auto", "loss_scale": "auto", "initial_scale_power": 8}}, precision="16-mixed")
    assert fp16["fp16"] == {**LOSS_SCALING, "enabled": True, "initial_scale_power": 8}


def test_user_values_are_kept() -> None:
    resolved = resolve({"train_batch_size": 64, "gradient_accumulation_steps": 4, "gradient_clipping": 1.0})
    assert resolved["train_batch_size"] == 64 and "train_micro_batch_size_per_gpu" not in resolved
    assert resolved["gradient_accumulation_steps"] == 4 and resolved["gradient_clipping"] == 1.0


@pytest.mark.parametrize(
    ("config", "precision", "match"),
    [
        ({"bf16": {"enabled": True}}, "32-true", r"has bf16.enabled=true, but Fabric runs with precision='32-true'"),
        ({"bfloat16": {"enabled": True}}, "32-true", r"bf16.enabled=true, but Fabric runs with precision='32-true'"),
        ({"fp16": {"enabled": True}}, "bf16-mixed", r"fp16.enabled=true, but Fabric runs with precision='bf16-mixed'"),
        ({"bf16": {"enabled": False}}, "bf16-true", r"bf16.enabled=false, but Fabric runs with precision='bf16-true'"),
    ],
)
def test_a_config_that_contradicts_the_precision_is_an_error_naming_both(
    config: dict[str, Any], precision: str, match: str
) -> None:
    with pytest.raises(DeepSpeedConfigError, match=match):
        check_precision(config, precision, "config=")
    with pytest.raises(DeepSpeedConfigError, match=match):
        resolve(config, precision=precision)


def test_an_auto_field_nobody_can_fill_is_an_error_naming_it() -> None:
    with pytest.raises(DeepSpeedConfigError, match=r"optimizer\.params\.lr"):
        resolve({"optimizer": {"type": "AdamW", "params": {"lr": "auto"}}})


def test_config_from_a_file_and_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "ds.json"
    file.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    assert load_config(file)[0] == {"zero_optimization": {"stage": 3}}
    assert load_config(str(file))[0] == {"zero_optimization": {"stage": 3}}
    assert load_config(None) == (None, "")

    monkeypatch.setenv("PL_DEEPSPEED_CONFIG_PATH", str(file))
    config, source = load_config(None)
    assert config == {"zero_optimization": {"stage": 3}} and "PL_DEEPSPEED_CONFIG_PATH" in source
    monkeypatch.setenv("FABRIC_DEEPSPEED_CONFIG_PATH", str(file))  # the same file twice is fine
    assert load_config(None)[0] == {"zero_optimization": {"stage": 3}}
    other = tmp_path / "other.json"
    other.write_text("{}")
    monkeypatch.setenv("FABRIC_DEEPSPEED_CONFIG_PATH", str(other))
    with pytest.raises(DeepSpeedConfigError, match="name different DeepSpeed config files"):
        load_config(None)

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DeepSpeedConfigError, match="not valid JSON"):
        load_config(tmp_path / "bad.json")
