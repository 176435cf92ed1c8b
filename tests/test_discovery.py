"""Plugin discovery (DESIGN.md section 4) against real distributions on ``sys.path``.

Each fake add-on is a ``*.dist-info`` folder plus its module (see ``tests/_fake_dist.py``),
so ``importlib.metadata`` and the entry-point loader run for real. Other add-ons installed
in this environment may show up too; tests that count or need one failure only restrict
discovery with ``FABRIC_PLUGINS``.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from fabric_core import Fabric
from fabric_core.discovery import Discovery, PluginRecord, discover, reset
from fabric_core.errors import (
    DuplicateNameError,
    FabricPluginWarning,
    PluginNotAvailableError,
    PluginValidationError,
    ReservedNameError,
)
from fabric_core.strategies import SingleDeviceStrategy
from tests._fake_dist import EMPTY_PLUGIN, FakeSite, broken_plugin, strategy_plugin

SWITCHES = ("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "FABRIC_PLUGINS", "FABRIC_BLOCK_PLUGINS")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_discovery: None) -> Iterator[FakeSite]:
    """A folder of fake add-ons on ``sys.path``, with every discovery switch unset (autoload on)."""
    for variable in SWITCHES:
        monkeypatch.delenv(variable, raising=False)
    with FakeSite(tmp_path / "site", monkeypatch) as fake:
        yield fake


def _record(found: Discovery, distribution: str) -> PluginRecord:
    records = found.records_for(distribution)
    assert len(records) == 1, [r.as_dict() for r in found.records]
    return records[0]


def _train_one_step(fabric: Fabric) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    before = model.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = fabric.setup(model, optimizer)
    loss = model(torch.randn(8, 4)).pow(2).sum()
    fabric.backward(loss)
    optimizer.step()
    optimizer.zero_grad()
    return before, model.weight.detach().clone()


# -- fabric-core's own entry point ------------------------------------------------------------


@pytest.mark.usefixtures("fresh_discovery")
def test_core_builtins_load_through_the_core_entry_point() -> None:
    # The core suite's default (autoload off) still loads fabric-core's own built-ins.
    assert os.environ["FABRIC_DISABLE_PLUGIN_AUTOLOAD"] == "1"
    declared = [ep for ep in metadata.entry_points(group="fabric_core") if ep.name == "builtins"]
    assert [(ep.dist.metadata["Name"] if ep.dist else None, ep.value) for ep in declared] == [
        ("fabric-core", "fabric_core._builtins")
    ]

    found = discover()
    core = _record(found, "fabric-core")
    assert (core.entry_point, core.value, core.status, core.error) == (
        "builtins",
        "fabric_core._builtins",
        "loaded",
        None,
    )
    assert core.module is sys.modules["fabric_core._builtins"]
    # At least these; the core grows (DDP, FSDP, ...) without this test changing.
    assert "single_device" in core.provides["strategies"]
    assert {"cpu", "cuda", "mps"} <= set(core.provides["accelerators"])
    assert {"32-true", "16-mixed", "bf16-mixed", "64-true"} <= set(core.provides["precisions"])
    assert "local" in core.provides["environments"]
    assert "csv" in core.provides["loggers"]
    assert found.records[0] is core  # the core goes first
    for registry in found.registries.values():
        assert all(entry.distribution == "fabric-core" for entry in registry), registry.kind
    assert found.registry("strategy").get("single_device").factory == (
        "fabric_core.strategies.single_device:SingleDeviceStrategy"
    )


# -- failures stay local -------------------------------------------------------------------------


def test_broken_addon_is_recorded_and_does_not_stop_the_others(site: FakeSite) -> None:
    site.add("fabric-broken", modules={"fake_broken_plugin": broken_plugin("No module named 'brokenbackend'")})
    site.add(
        "fabric-good",
        modules={
            "fake_good_plugin": strategy_plugin(
                "good_single", "fabric_core.strategies.single_device:SingleDeviceStrategy"
            )
        },
    )
    with pytest.warns(FabricPluginWarning, match=r"Plugin fabric-broken .* failed to load and was skipped"):
        found = discover()

    broken = _record(found, "fabric-broken")
    assert broken.status == "failed"
    assert isinstance(broken.error, ImportError)
    assert str(broken.error) == "No module named 'brokenbackend'"
    assert broken.error.__traceback__ is not None  # kept for chaining when it is selected
    assert broken.reason == "ImportError: No module named 'brokenbackend'"
    assert broken.module is None and broken.provides == {}

    good = _record(found, "fabric-good")
    assert good.status == "loaded"
    assert good.provides == {"strategies": ["good_single"]}
    assert _record(found, "fabric-core").status == "loaded"

    before, after = _train_one_step(Fabric(accelerator="cpu"))
    assert not torch.equal(before, after)
    assert isinstance(Fabric(strategy="good_single").strategy, SingleDeviceStrategy)


@pytest.mark.parametrize("name", ["deepspeed", "deepspeed_stage_3_offload"])
def test_selecting_a_known_addon_that_failed_chains_its_error(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    site.add(
        "fabric-deepspeed",
        version="0.3.0",
        modules={"fake_fabric_deepspeed": broken_plugin("No module named 'deepspeed'")},
        entry_points={"deepspeed": "fake_fabric_deepspeed"},
    )
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-deepspeed")
    with pytest.warns(FabricPluginWarning, match="fabric-deepspeed"):
        record = _record(discover(), "fabric-deepspeed")
    assert record.status == "failed"

    with pytest.raises(PluginNotAvailableError) as raised:
        Fabric(strategy=name)
    assert str(raised.value) == (
        f"strategy={name!r}: strategy {name!r} is provided by fabric-deepspeed 0.3.0, which is installed but "
        "failed to load (ImportError: No module named 'deepspeed'). Fix or reinstall it (pip install "
        "--force-reinstall fabric-deepspeed); the original error is chained below."
    )
    assert raised.value.__cause__ is record.error
    assert isinstance(raised.value.__cause__, ImportError)


def test_selecting_an_unknown_name_chains_the_one_failed_addon(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.add("fabric-shiny", modules={"fake_shiny_plugin": broken_plugin("shinylib is missing")})
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-shiny")
    with pytest.warns(FabricPluginWarning, match="fabric-shiny"):
        record = _record(discover(), "fabric-shiny")

    with pytest.raises(PluginNotAvailableError) as raised:
        Fabric(strategy="shiny")
    message = str(raised.value)
    available = discover().registry("strategy").describe_available()
    assert "'single_device' (fabric-core)" in available
    assert message.startswith(f"Unknown strategy='shiny'. Available strategies: {available}.")
    assert "Installed plugins that were not loaded, one of which may provide it:" in message
    assert "fabric-shiny (failed: ImportError: shinylib is missing)" in message
    assert raised.value.__cause__ is record.error


def test_a_registration_hook_that_raises_half_way_leaves_nothing_behind(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.add(
        "fabric-halfway",
        modules={
            "fake_halfway_plugin": """
                from fabric_core.hookspecs import hookimpl


                @hookimpl
                def fabric_register_accelerators(registry):
                    registry.add("halfway_accel", "fabric_core.accelerators.cpu:CPUAccelerator")


                @hookimpl
                def fabric_register_strategies(registry):
                    registry.add("halfway_a", "fabric_core.strategies.single_device:SingleDeviceStrategy")
                    raise RuntimeError("boom after the first entry")
                    registry.add("halfway_b", "fabric_core.strategies.single_device:SingleDeviceStrategy")
                """
        },
    )
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-halfway")
    with pytest.warns(FabricPluginWarning, match="RuntimeError: boom after the first entry"):
        found = discover()

    record = _record(found, "fabric-halfway")
    assert record.status == "failed"
    assert record.reason == "RuntimeError: boom after the first entry"
    assert record.provides == {} and record.module is None
    assert "halfway_a" not in found.registry("strategy")
    assert "halfway_b" not in found.registry("strategy")
    assert "halfway_accel" not in found.registry("accelerator")  # its earlier hook's entry is gone too
    assert {entry.distribution for entry in found.registry("strategy")} == {"fabric-core"}
    # Its module was unregistered, so no Fabric ever calls into it.
    assert all("fabric-halfway" not in name for name, _ in found.runtime_plugins())


def test_a_misspelled_hook_name_fails_the_plugin_with_a_suggestion(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.add(
        "fabric-typo",
        modules={
            "fake_typo_plugin": """
                from fabric_core.hookspecs import hookimpl


                @hookimpl
                def fabric_register_strategy(registry):
                    registry.add("typo_strategy", "fabric_core.strategies.single_device:SingleDeviceStrategy")
                """
        },
    )
    site.add("fabric-fine", modules={"fake_fine_plugin": strategy_plugin("fine_strategy", "x.y:Z")})
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-typo,fabric-fine")
    with pytest.warns(FabricPluginWarning, match="Did you mean 'fabric_register_strategies'"):
        found = discover()

    record = _record(found, "fabric-typo")
    assert record.status == "failed"
    assert isinstance(record.error, PluginValidationError)
    assert "implements 'fabric_register_strategy', which is not a fabric-core hook." in record.reason
    assert "Did you mean 'fabric_register_strategies'?" in record.reason
    assert "typo_strategy" not in found.registry("strategy")
    # The failure is the typo plugin's alone.
    assert _record(found, "fabric-fine").status == "loaded"
    assert "fine_strategy" in found.registry("strategy")


# -- switches ----------------------------------------------------------------------------------


@pytest.mark.parametrize("blocked", ["fabric-blockme", "fabric_blockme", "blockme_ep"])
def test_block_plugins_by_distribution_or_entry_point_name(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch, blocked: str
) -> None:
    site.add(
        "fabric-blockme",
        modules={"fake_blockme_plugin": strategy_plugin("blocked_strategy", "x.y:Z")},
        entry_points={"blockme_ep": "fake_blockme_plugin"},
    )
    monkeypatch.setenv("FABRIC_BLOCK_PLUGINS", f"something-else, {blocked}")
    found = discover()

    record = _record(found, "fabric-blockme")
    assert record.status == "blocked"
    assert record.reason == (
        f"listed in FABRIC_BLOCK_PLUGINS=something-else,{blocked}; remove it from there to load it"
    )
    assert "fake_blockme_plugin" not in sys.modules  # a blocked add-on is not even imported
    assert _record(found, "fabric-core").status == "loaded"

    with pytest.raises(PluginNotAvailableError, match=r"fabric-blockme \(blocked: listed in FABRIC_BLOCK_PLUGINS="):
        Fabric(strategy="blocked_strategy")


def test_fabric_block_plugins_cannot_block_the_core(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FABRIC_BLOCK_PLUGINS", "fabric-core")
    assert _record(discover(), "fabric-core").status == "loaded"


def test_fabric_plugins_allow_list(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.add("fabric-alpha", modules={"fake_alpha_plugin": strategy_plugin("alpha_strategy", "x.y:Z")})
    site.add("fabric-beta", modules={"fake_beta_plugin": strategy_plugin("beta_strategy", "x.y:Z")})
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-alpha")
    found = discover()

    assert _record(found, "fabric-core").status == "loaded"  # the core needs no listing
    assert _record(found, "fabric-alpha").status == "loaded"
    beta = _record(found, "fabric-beta")
    assert beta.status == "not-allowed"
    assert beta.reason == "not listed in FABRIC_PLUGINS=fabric-alpha; add fabric-beta to it"
    assert "fake_beta_plugin" not in sys.modules
    assert "beta_strategy" not in found.registry("strategy")
    for record in found.records:
        if record.distribution not in ("fabric-core", "fabric-alpha"):
            assert record.status == "not-allowed", record.as_dict()

    with pytest.raises(PluginNotAvailableError, match=r"fabric-beta \(not-allowed: not listed in FABRIC_PLUGINS"):
        Fabric(strategy="beta_strategy")


def test_disable_autoload_loads_only_fabric_core(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.add("fabric-alpha", modules={"fake_alpha_plugin": strategy_plugin("alpha_strategy", "x.y:Z")})
    monkeypatch.setenv("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-alpha")  # the master switch wins over the allow-list
    found = discover()

    loaded = [record.distribution for record in found.records if record.status == "loaded"]
    assert loaded == ["fabric-core"]
    for record in found.records[1:]:
        assert record.status == "disabled", record.as_dict()
        assert record.reason == "FABRIC_DISABLE_PLUGIN_AUTOLOAD=1 is set; unset it to load add-ons"
    assert _record(found, "fabric-alpha").status == "disabled"
    assert "fake_alpha_plugin" not in sys.modules
    assert {entry.distribution for entry in found.registry("strategy")} == {"fabric-core"}


def test_incompatible_core_requirement_is_skipped_with_a_warning(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.add(
        "fabric-future",
        version="9.2.0",
        modules={"fake_future_plugin": strategy_plugin("future_strategy", "x.y:Z")},
        requires=["fabric-core>=9,<10", "numpy>=1"],
    )
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-future")
    with pytest.warns(FabricPluginWarning) as caught:
        found = discover()

    messages = [str(w.message) for w in caught if "fabric-future" in str(w.message)]
    assert messages == [
        "Skipping plugin fabric-future: fabric-future 9.2.0 requires fabric-core<10,>=9 but fabric-core 0.1.0 is "
        "installed; install a fabric-future release made for fabric-core 0.1.0, or a fabric-core that matches "
        "<10,>=9."
    ]
    record = _record(found, "fabric-future")
    assert record.status == "incompatible"
    assert "requires fabric-core<10,>=9 but fabric-core 0.1.0 is installed" in record.reason
    assert "fake_future_plugin" not in sys.modules
    assert "future_strategy" not in found.registry("strategy")


def test_a_requirement_on_an_extra_of_fabric_core_is_not_a_version_check(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.add(
        "fabric-extras",
        modules={"fake_extras_plugin": EMPTY_PLUGIN},
        requires=["fabric-core>=0.1,<1", 'fabric-core>=99; extra == "test"'],
    )
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-extras")
    assert _record(discover(), "fabric-extras").status == "loaded"


# -- names from two distributions ------------------------------------------------------------


def test_two_distributions_registering_one_name(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    factory = "fabric_core.strategies.single_device:SingleDeviceStrategy"
    site.add("fabric-one", modules={"fake_one_plugin": strategy_plugin("twin", factory)})
    site.add(
        "fabric-two",
        modules={
            "fake_two_plugin": """
                from fabric_core.hookspecs import hookimpl


                @hookimpl
                def fabric_register_strategies(registry):
                    registry.add("twin", "fabric_core.strategies.single_device:SingleDeviceStrategy")
                    registry.add("only_two", "fabric_core.strategies.single_device:SingleDeviceStrategy")
                """
        },
    )
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-one,fabric-two")
    with pytest.warns(FabricPluginWarning, match="strategy 'twin' is registered by both fabric-one and fabric-two"):
        found = discover()

    registry = found.registry("strategy")
    assert [entry.distribution for entry in registry.conflicts["twin"]] == ["fabric-one", "fabric-two"]
    assert "only_two" in registry  # the rest of fabric-two is fine
    for name, other in (("fabric-one", "fabric-two"), ("fabric-two", "fabric-one")):
        record = _record(found, name)
        assert record.status == "loaded"
        assert record.reason == f"strategy 'twin' conflicts with {other}"

    with pytest.raises(DuplicateNameError) as raised:
        Fabric(strategy="twin")
    assert str(raised.value) == (
        "strategy 'twin' is registered by both fabric-one and fabric-two, so fabric-core cannot tell which one "
        "you mean. Uninstall one of them, or block one with FABRIC_BLOCK_PLUGINS=<distribution>."
    )

    # Blocking one of them, as the message says, resolves it.
    monkeypatch.setenv("FABRIC_BLOCK_PLUGINS", "fabric-two")
    discover(refresh=True)
    assert isinstance(Fabric(strategy="twin").strategy, SingleDeviceStrategy)


def test_one_distribution_giving_a_name_from_two_entry_points_fails_only_the_second(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.add(
        "fabric-dup",
        modules={
            "fake_dup_a": strategy_plugin("dup", "fabric_core.strategies.single_device:SingleDeviceStrategy"),
            "fake_dup_b": strategy_plugin("dup", "x.y:Z"),
        },
        entry_points={"a": "fake_dup_a", "b": "fake_dup_b"},
    )
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-dup")
    with pytest.warns(FabricPluginWarning, match="registered twice by fabric-dup"):
        found = discover()  # used to raise out of discovery, breaking every Fabric()

    first, second = found.records_for("fabric-dup")
    assert (first.entry_point, first.status) == ("a", "loaded")
    assert (second.entry_point, second.status) == ("b", "failed")
    assert second.reason == (
        "ValueError: strategy 'dup' is registered twice by fabric-dup (by two of its entry points); register "
        "each name from one entry point only."
    )
    assert isinstance(Fabric(strategy="dup").strategy, SingleDeviceStrategy)


def test_an_addon_cannot_take_over_a_core_name(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.add(
        "fabric-squatter",
        modules={
            "fake_squatter_plugin": """
                from fabric_core.hookspecs import hookimpl


                @hookimpl
                def fabric_register_strategies(registry):
                    registry.add("squat", "fabric_core.strategies.single_device:SingleDeviceStrategy")
                    registry.add("single_device", "x.y:Z")
                """
        },
    )
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-squatter")
    with pytest.warns(FabricPluginWarning, match="was refused: fabric-squatter registers strategy 'single_device'"):
        found = discover()
    record = _record(found, "fabric-squatter")
    assert record.status == "refused"
    assert isinstance(record.error, ReservedNameError)
    assert (record.error.kind, record.error.name, record.error.distribution) == (
        "strategy",
        "single_device",
        "fabric-squatter",
    )
    assert "FABRIC_BLOCK_PLUGINS=fabric-squatter" in record.reason
    # The core's name keeps working, from the core.
    assert found.registry("strategy").get("single_device").distribution == "fabric-core"
    assert isinstance(Fabric(strategy="single_device").strategy, SingleDeviceStrategy)
    # The add-on is not half loaded: its other names are refused with it, naming why.
    with pytest.raises(PluginNotAvailableError, match=r"fabric-squatter \(refused: fabric-squatter registers"):
        Fabric(strategy="squat")


# -- a third-party strategy, end to end --------------------------------------------------------

_STRATEGY_IMPL = """
    from fabric_core.strategies import SingleDeviceStrategy


    class CountingStrategy(SingleDeviceStrategy):
        backward_calls = 0
        step_calls = 0

        def __init__(self, label="plain", **kwargs):
            super().__init__(**kwargs)
            self.label = label

        def backward(self, tensor, module, *args, **kwargs):
            type(self).backward_calls += 1
            super().backward(tensor, module, *args, **kwargs)

        def optimizer_step(self, optimizer, **kwargs):
            type(self).step_calls += 1
            return super().optimizer_step(optimizer, **kwargs)
    """

_STRATEGY_PLUGIN = """
    from fabric_core.hookspecs import hookimpl


    @hookimpl
    def fabric_register_strategies(registry):
        registry.add("counting", "fake_counting_impl.strategy:CountingStrategy", description="counts calls")
        registry.add(
            "counting_labelled",
            "fake_counting_impl.strategy:CountingStrategy",
            init_params={"label": "labelled"},
        )
    """


def test_third_party_strategy_selected_by_name_trains_a_step(site: FakeSite) -> None:
    site.add(
        "fabric-counting",
        version="2.0.0",
        modules={"fake_counting_plugin": _STRATEGY_PLUGIN, "fake_counting_impl.strategy": _STRATEGY_IMPL},
        entry_points={"counting": "fake_counting_plugin"},
    )
    found = discover()
    record = _record(found, "fabric-counting")
    assert (record.status, record.version) == ("loaded", "2.0.0")
    assert record.provides == {"strategies": ["counting", "counting_labelled"]}
    entry = found.registry("strategy").get("counting")
    assert (entry.distribution, entry.description) == ("fabric-counting", "counts calls")
    # Discovery imported the entry-point module, but not the factory string it registered.
    assert "fake_counting_plugin" in sys.modules
    assert "fake_counting_impl.strategy" not in sys.modules
    assert "fake_counting_impl" not in sys.modules

    fabric = Fabric(accelerator="cpu", strategy="counting")
    strategy_class = sys.modules["fake_counting_impl.strategy"].CountingStrategy
    assert type(fabric.strategy) is strategy_class
    assert isinstance(fabric.strategy, SingleDeviceStrategy)
    assert fabric.strategy.label == "plain"
    assert fabric.device == torch.device("cpu")

    before, after = _train_one_step(fabric)
    assert not torch.equal(before, after)
    assert (strategy_class.backward_calls, strategy_class.step_calls) == (1, 1)

    # One factory serves several names through init_params.
    assert Fabric(strategy="counting_labelled").strategy.label == "labelled"


_EVERY_KIND_PLUGIN = """
    from fabric_core.hookspecs import hookimpl

    IMPL = "fake_kinds_impl"


    @hookimpl
    def fabric_register_accelerators(registry):
        registry.add("kinds_cpu", f"{IMPL}:KindsAccelerator")


    @hookimpl
    def fabric_register_precisions(registry):
        registry.add("kinds-32", f"{IMPL}:KindsPrecision")


    @hookimpl
    def fabric_register_environments(registry):
        registry.add("kinds_cluster", f"{IMPL}:KindsEnvironment", priority=50)


    @hookimpl
    def fabric_register_loggers(registry):
        registry.add("kinds_memory", f"{IMPL}:MemoryLogger")


    @hookimpl
    def fabric_register_callbacks(registry):
        registry.add("kinds_counter", f"{IMPL}:CountingCallback", init_params={"start": 10})
    """

_EVERY_KIND_IMPL = """
    import os

    from fabric_core.accelerators import CPUAccelerator
    from fabric_core.environments import LocalEnvironment
    from fabric_core.loggers import Logger
    from fabric_core.precision import Precision


    class KindsAccelerator(CPUAccelerator):
        name = "kinds_cpu"


    class KindsPrecision(Precision):
        pass


    class KindsEnvironment(LocalEnvironment):
        @classmethod
        def detect(cls):
            return os.environ.get("KINDS_CLUSTER") == "1"


    class MemoryLogger(Logger):
        def __init__(self):
            self.metrics = []

        @property
        def name(self):
            return "memory"

        @property
        def version(self):
            return 0

        def log_metrics(self, metrics, step=None):
            self.metrics.append((dict(metrics), step))

        def log_hyperparams(self, params, *args, **kwargs):
            pass


    class CountingCallback:
        def __init__(self, start):
            self.count = start
            self.setups = 0

        def on_train_start(self):
            self.count += 1

        def fabric_on_after_setup(self, module):
            self.setups += 1
    """


def test_an_addon_registers_every_kind_and_each_is_selectable_by_name(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.add(
        "fabric-kinds",
        modules={"fake_kinds_plugin": _EVERY_KIND_PLUGIN, "fake_kinds_impl": _EVERY_KIND_IMPL},
        entry_points={"kinds": "fake_kinds_plugin"},
    )
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-kinds")
    record = _record(discover(), "fabric-kinds")
    assert record.provides == {
        "accelerators": ["kinds_cpu"],
        "precisions": ["kinds-32"],
        "environments": ["kinds_cluster"],
        "loggers": ["kinds_memory"],
        "callbacks": ["kinds_counter"],
    }
    assert "fake_kinds_impl" not in sys.modules

    # Not detected: the core's local environment is used.
    monkeypatch.delenv("KINDS_CLUSTER", raising=False)
    assert type(Fabric(accelerator="cpu").strategy.cluster_environment).__name__ == "LocalEnvironment"

    monkeypatch.setenv("KINDS_CLUSTER", "1")
    fabric = Fabric(
        accelerator="kinds_cpu", precision="kinds-32", loggers=["kinds_memory"], callbacks=["kinds_counter"]
    )
    impl = sys.modules["fake_kinds_impl"]
    assert type(fabric.accelerator) is impl.KindsAccelerator
    assert type(fabric.strategy.precision) is impl.KindsPrecision
    assert type(fabric.strategy.cluster_environment) is impl.KindsEnvironment  # detected, priority 50 > local

    fabric.log("loss", 0.5, step=3)
    assert fabric.logger.metrics == [({"loss": 0.5}, 3)]

    (callback,) = fabric._callbacks
    assert callback.count == 10  # init_params reached the factory
    fabric.call("on_train_start")
    fabric.setup_module(nn.Linear(2, 2))
    assert (callback.count, callback.setups) == (11, 1)


def test_a_factory_that_fails_to_import_breaks_only_its_selection(site: FakeSite) -> None:
    site.add(
        "fabric-lazy",
        modules={
            "fake_lazy_plugin": strategy_plugin("lazy_strategy", "fake_lazy_impl:LazyStrategy"),
            "fake_lazy_impl": "import not_installed_backend_xyz\n",
        },
    )
    assert _record(discover(), "fabric-lazy").status == "loaded"
    with pytest.raises(ImportError) as raised:
        Fabric(strategy="lazy_strategy")
    assert str(raised.value).startswith(
        "strategy 'lazy_strategy' from fabric-lazy could not be loaded: importing 'fake_lazy_impl:LazyStrategy' "
        "failed with ModuleNotFoundError: No module named 'not_installed_backend_xyz'."
    )
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)
    Fabric(accelerator="cpu")  # nothing else is affected


def test_entry_point_module_with_runtime_hooks_is_registered_on_every_fabric(site: FakeSite) -> None:
    site.add(
        "fabric-tracer",
        modules={
            "fake_tracer_plugin": """
                from fabric_core.hookspecs import hookimpl

                calls = []


                @hookimpl(wrapper=True)
                def fabric_backward(tensor):
                    calls.append("before")
                    result = yield
                    calls.append("after")
                    return result


                @hookimpl
                def fabric_on_after_optimizer_step(optimizer):
                    calls.append("stepped")
                """
        },
    )
    record = _record(discover(), "fabric-tracer")
    assert record.status == "loaded"
    assert record.hooks == ["fabric_backward", "fabric_on_after_optimizer_step"]

    _train_one_step(Fabric(accelerator="cpu"))
    assert sys.modules["fake_tracer_plugin"].calls == ["before", "after", "stepped"]


# -- laziness and caching --------------------------------------------------------------------


def test_discovery_is_cached_until_reset(site: FakeSite) -> None:
    first = discover()
    assert discover() is first
    Fabric(accelerator="cpu")
    assert discover() is first  # Fabric() reuses the cached result

    site.add("fabric-late", modules={"fake_late_plugin": strategy_plugin("late_strategy", "x.y:Z")})
    assert "late_strategy" not in discover().registry("strategy")  # still the cached result
    assert "late_strategy" in discover(refresh=True).registry("strategy")
    refreshed = discover()
    reset()
    assert discover() is not refreshed


def test_import_fabric_core_does_not_run_discovery(site: FakeSite) -> None:
    site.add("fabric-probe", modules={"fake_probe_plugin": strategy_plugin("probe_strategy", "x.y:Z")})
    code = """
import json, sys
import fabric_core
from fabric_core import _discovery
before = {
    "cache": _discovery._cache is None,
    "builtins": "fabric_core._builtins" in sys.modules,
    "probe": "fake_probe_plugin" in sys.modules,
}
fabric_core.Fabric(accelerator="cpu")
after = {
    "cache": _discovery._cache is None,
    "builtins": "fabric_core._builtins" in sys.modules,
    "probe": "fake_probe_plugin" in sys.modules,
}
print(json.dumps({"before": before, "after": after}))
"""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FABRIC_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site.root), *filter(None, [env.get("PYTHONPATH")])])
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert state["before"] == {"cache": True, "builtins": False, "probe": False}
    assert state["after"] == {"cache": False, "builtins": True, "probe": True}


@pytest.mark.parametrize(
    ("line", "specifier"),
    [
        ("fabric-core>=0.1,<1", "<1,>=0.1"),
        ("fabric_core (>= 0.2)", ">=0.2"),
        ("Fabric.Core[extra]>=1", ">=1"),
        ("fabric-core", None),
        ("torch>=2.4,<3", None),
        ("pytest>=8; extra == 'test'", None),
        ("fabric-core>=0.1; extra == 'test'", None),
        ("fabric-core>=0.3; python_version >= '3'", ">=0.3"),
    ],
)
def test_core_requirement_lines_are_read_without_packaging_where_plain(line: str, specifier: str | None) -> None:
    from fabric_core._requirements import core_specifier as _core_specifier

    assert _core_specifier(line) == specifier


def test_core_version_checks_match_packagings_rules() -> None:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    from fabric_core._requirements import satisfies as _satisfies

    for version in ("0.1.0", "0.2.0rc1", "1.0", "0.0.9"):
        for specifier in (">=0.1,<1", ">0.1", "<=0.1", "==0.1.0", "!=0.1.0", "==0.1.*", "~=0.1", ">=0.2.0rc1"):
            expected = SpecifierSet(specifier).contains(Version(version), prereleases=True)
            assert _satisfies(Version(version), specifier) == expected, (version, specifier)


def test_first_fabric_does_not_compile_packagings_specifier_regex() -> None:
    # packaging's Specifier regex costs ~100 ms to compile: most of a first Fabric() with add-ons installed.
    code = (
        "import sys; from fabric_core import Fabric; Fabric(accelerator='cpu'); "
        "print('packaging.specifiers' in sys.modules)"
    )
    env = {**os.environ, "FABRIC_DISABLE_PLUGIN_AUTOLOAD": "0"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
