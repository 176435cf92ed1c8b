"""What a user reads when a name cannot be used (DESIGN.md section 5).

The first group runs on a bare install: fabric-core alone, the core suite's default. A test
whose add-on happens to be installed in this environment is skipped, since the message then
rightly differs. The second group installs fake add-ons (``tests/_fake_dist.py``) to reach
the "installed but not loaded" messages.
"""

from __future__ import annotations

import importlib.metadata as metadata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fabric_core import Fabric, __version__
from fabric_core.discovery import discover, lookup
from fabric_core.errors import FabricPluginWarning, PluginNotAvailableError
from fabric_core.registry import KINDS, Entry
from tests._fake_dist import FakeSite, broken_plugin


def _require_absent(distribution: str) -> None:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return
    pytest.skip(f"{distribution} is installed here; this test needs a bare fabric-core")


# -- add-on names on a bare install ------------------------------------------------------------


@pytest.mark.usefixtures("fresh_discovery")
@pytest.mark.parametrize(
    ("kwargs", "kind", "name", "distribution"),
    [
        ({"strategy": "deepspeed"}, "strategy", "deepspeed", "fabric-deepspeed"),
        ({"strategy": "deepspeed_stage_3_offload"}, "strategy", "deepspeed_stage_3_offload", "fabric-deepspeed"),
        ({"accelerator": "tpu"}, "accelerator", "tpu", "fabric-xla"),
        ({"strategy": "xla"}, "strategy", "xla", "fabric-xla"),
        ({"strategy": "xla_fsdp"}, "strategy", "xla_fsdp", "fabric-xla"),
        ({"precision": "bf16-true-xla"}, "precision", "bf16-true-xla", "fabric-xla"),
        ({"loggers": ["tensorboard"]}, "logger", "tensorboard", "fabric-tensorboard"),
        ({"loggers": ["mlflow"]}, "logger", "mlflow", "fabric-mlflow"),
        ({"loggers": "wandb"}, "logger", "wandb", "fabric-wandb"),
    ],
)
def test_known_addon_name_on_a_bare_install(kwargs: dict[str, Any], kind: str, name: str, distribution: str) -> None:
    _require_absent(distribution)
    with pytest.raises(PluginNotAvailableError) as raised:
        Fabric(**kwargs)
    assert str(raised.value) == (
        f"{kind}={name!r}: {kind} {name!r} is provided by {distribution}, which is not installed: "
        f"pip install {distribution}"
    )
    assert raised.value.__cause__ is None


@pytest.mark.usefixtures("fresh_discovery")
def test_plugin_not_available_is_a_value_error() -> None:
    # Lightning raises ValueError for a bad name; code catching that keeps working.
    _require_absent("fabric-deepspeed")
    with pytest.raises(ValueError, match="pip install fabric-deepspeed"):
        Fabric(strategy="deepspeed")


# -- unknown names -------------------------------------------------------------------------------


def _available(kind: str) -> str:
    """The list an error shows, read from the registry: the core gains names, this stays right."""
    return f"Available {KINDS[kind]}: {discover().registry(kind).describe_available()}."


@pytest.mark.usefixtures("fresh_discovery")
@pytest.mark.parametrize(
    ("kwargs", "kind", "asked", "hint", "listed"),
    [
        ({"accelerator": "cpux"}, "accelerator", "'cpux'", "Did you mean 'cpu'?", "'cpu' (fabric-core)"),
        (
            {"strategy": "singel_device"},
            "strategy",
            "'singel_device'",
            "Did you mean 'single_device'?",
            "'single_device' (fabric-core)",
        ),
        (
            {"precision": "bf16-mixd"},
            "precision",
            "'bf16-mixd'",
            "Did you mean 'bf16-mixed'",
            "'bf16-mixed' (fabric-core)",
        ),
        ({"precision": "16-ture"}, "precision", "'16-ture'", "Did you mean '16-true'", "'16-true' (fabric-core)"),
        ({"loggers": ["cvs"]}, "logger", "'cvs'", "Did you mean 'csv'?", "'csv' (fabric-core)"),
    ],
)
def test_unknown_name_suggests_and_lists_what_is_available(
    kwargs: dict[str, Any], kind: str, asked: str, hint: str, listed: str
) -> None:
    with pytest.raises(PluginNotAvailableError) as raised:
        Fabric(**kwargs)
    message = str(raised.value)
    assert message.startswith(f"Unknown {kind}={asked}. {hint}")
    assert f" {_available(kind)}" in message
    assert listed in message


@pytest.mark.usefixtures("fresh_discovery")
@pytest.mark.parametrize("precision", ["17", 17, "int8"])
def test_unknown_precision_without_a_close_match_lists_the_precisions(precision: Any) -> None:
    with pytest.raises(PluginNotAvailableError) as raised:
        Fabric(precision=precision)
    message = str(raised.value)
    assert message.startswith(f"Unknown precision='{precision}'. {_available('precision')}")
    for name in ("16-mixed", "16-true", "32-true", "64-true", "bf16-mixed", "bf16-true"):
        assert f"'{name}' (fabric-core)" in message
    assert "Did you mean" not in message


@pytest.mark.usefixtures("fresh_discovery")
def test_unknown_callback_name() -> None:
    with pytest.raises(PluginNotAvailableError, match=r"^Unknown callback='early_stoping'\. Available callbacks: "):
        Fabric(callbacks=["early_stoping"])


@pytest.mark.usefixtures("fresh_discovery")
def test_lookup_returns_the_entry_for_a_known_name() -> None:
    entry = lookup("strategy", "single_device")
    assert isinstance(entry, Entry)
    assert (entry.kind, entry.distribution) == ("strategy", "fabric-core")


# -- what "auto" picks for several processes ---------------------------------------------------


@pytest.mark.usefixtures("fresh_discovery")
def test_auto_strategy_picks_ddp_for_several_devices_or_nodes() -> None:
    from fabric_core.strategies.ddp import DDPStrategy

    assert type(Fabric(accelerator="cpu", devices=2).strategy) is DDPStrategy
    assert type(Fabric(accelerator="cpu", devices=1, num_nodes=2).strategy) is DDPStrategy


@pytest.mark.usefixtures("fresh_discovery")
def test_the_context_of_a_name_goes_into_the_first_sentence() -> None:
    # What the connector passes when "auto" chose the name; holds whatever the core provides.
    context = " (chosen by strategy='auto' for 2 device(s) on 1 node(s))"
    with pytest.raises(PluginNotAvailableError) as raised:
        lookup("strategy", "fsdp_not_a_real_variant", context=context)
    assert f"strategy='fsdp_not_a_real_variant'{context}" in str(raised.value)
    with pytest.raises(PluginNotAvailableError) as raised:
        lookup("strategy", "nonsense", context=context)
    assert str(raised.value).startswith(f"Unknown strategy='nonsense'{context}.")


# -- installed add-ons that did not load ---------------------------------------------------------

_DEEPSPEED_PLUGIN = """
    from fabric_core.hookspecs import hookimpl


    @hookimpl
    def fabric_register_strategies(registry):
        for name in ("deepspeed", "deepspeed_stage_1"):
            registry.add(name, "fabric_core.strategies.single_device:SingleDeviceStrategy")
    """


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_discovery: None) -> Iterator[FakeSite]:
    for variable in ("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "FABRIC_PLUGINS", "FABRIC_BLOCK_PLUGINS"):
        monkeypatch.delenv(variable, raising=False)
    with FakeSite(tmp_path / "site", monkeypatch) as fake:
        yield fake


def _fake_deepspeed(site: FakeSite, **kwargs: Any) -> None:
    site.add(
        "fabric-deepspeed",
        version="0.3.0",
        modules={"fake_ds_plugin": _DEEPSPEED_PLUGIN},
        entry_points={"deepspeed": "fake_ds_plugin"},
        **kwargs,
    )


def test_installed_addon_with_autoload_off(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_deepspeed(site)
    monkeypatch.setenv("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "1")
    with pytest.raises(PluginNotAvailableError) as raised:
        Fabric(strategy="deepspeed_stage_1")
    assert str(raised.value) == (
        "strategy='deepspeed_stage_1': strategy 'deepspeed_stage_1' is provided by fabric-deepspeed 0.3.0, which "
        "is installed but was not loaded: FABRIC_DISABLE_PLUGIN_AUTOLOAD=1 is set; unset it to load add-ons."
    )


def test_installed_addon_that_is_blocked(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_deepspeed(site)
    monkeypatch.setenv("FABRIC_BLOCK_PLUGINS", "fabric-deepspeed")
    with pytest.raises(PluginNotAvailableError) as raised:
        Fabric(strategy="deepspeed")
    assert str(raised.value) == (
        "strategy='deepspeed': strategy 'deepspeed' is provided by fabric-deepspeed 0.3.0, which is installed but "
        "was not loaded: listed in FABRIC_BLOCK_PLUGINS=fabric-deepspeed; remove it from there to load it."
    )


def test_installed_addon_outside_the_allow_list(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_deepspeed(site)
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-other")
    with pytest.raises(PluginNotAvailableError, match=r"was not loaded: not listed in FABRIC_PLUGINS=fabric-other"):
        Fabric(strategy="deepspeed")


def test_installed_addon_for_another_core(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_deepspeed(site, requires=["fabric-core>=9,<10"])
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-deepspeed")
    with (
        pytest.warns(FabricPluginWarning, match="requires fabric-core<10,>=9"),
        pytest.raises(PluginNotAvailableError) as raised,
    ):
        Fabric(strategy="deepspeed")
    assert str(raised.value).startswith(
        "strategy='deepspeed': strategy 'deepspeed' is provided by fabric-deepspeed 0.3.0, which is installed but "
        f"was not loaded: fabric-deepspeed 0.3.0 requires fabric-core<10,>=9 but fabric-core {__version__} is "
        "installed;"
    )


def test_installed_addon_that_lacks_the_name(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_deepspeed(site)
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-deepspeed")
    with pytest.raises(PluginNotAvailableError) as raised:
        Fabric(strategy="deepspeed_stage_9")
    assert str(raised.value) == (
        "strategy='deepspeed_stage_9': fabric-deepspeed 0.3.0 is installed and loaded but does not provide "
        "strategy 'deepspeed_stage_9' (its strategies: deepspeed, deepspeed_stage_1). Check the name, or "
        "upgrade fabric-deepspeed."
    )
    # ... while its real names work.
    Fabric(strategy="deepspeed")


def test_installed_addon_that_failed_to_import(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.add(
        "fabric-tensorboard",
        modules={"fake_tb_plugin": broken_plugin("No module named 'tensorboard'")},
        entry_points={"tensorboard": "fake_tb_plugin"},
    )
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-tensorboard")
    with pytest.warns(FabricPluginWarning), pytest.raises(PluginNotAvailableError) as raised:
        Fabric(loggers=["tensorboard"])
    assert str(raised.value).startswith(
        "logger='tensorboard': logger 'tensorboard' is provided by fabric-tensorboard 1.0.0, which is installed "
        "but failed to load (ImportError: No module named 'tensorboard')."
    )
    assert isinstance(raised.value.__cause__, ImportError)
    assert str(raised.value.__cause__) == "No module named 'tensorboard'"
