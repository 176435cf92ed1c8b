"""The ``fabric_plugins`` fixture: an add-on module registered in this process, found by the real discovery."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import pytest
import torch

from fabric_core import Fabric, hookimpl
from fabric_core.errors import FabricPluginWarning
from fabric_core.strategies import SingleDeviceStrategy
from fabric_core.testing import PluginSandbox, strategy_plugin


class HalfStepStrategy(SingleDeviceStrategy):
    """One device; every optimizer step runs twice (a strategy only an add-on provides)."""

    def optimizer_step(self, optimizer: torch.optim.Optimizer, **kwargs: object) -> object:
        super().optimizer_step(optimizer, **kwargs)
        return super().optimizer_step(optimizer, **kwargs)


def _addon_module(name: str = "fabric_inprocess") -> types.ModuleType:
    """A plugin module built in memory, registering the strategy ``double_step``."""
    module = types.ModuleType(name)

    @hookimpl
    def fabric_register_strategies(registry: object) -> None:
        registry.add("double_step", HalfStepStrategy, description="steps twice")  # type: ignore[attr-defined]

    module.fabric_register_strategies = fabric_register_strategies  # type: ignore[attr-defined]
    return module


def test_a_module_registered_in_process_selects_its_strategy_by_name(fabric_plugins: PluginSandbox) -> None:
    record = fabric_plugins.register(_addon_module(), distribution="fabric-inprocess")
    assert (record.entry_point, record.status) == ("fabric_inprocess", "loaded")
    assert record.provides == {"strategies": ["double_step"]}

    fabric = Fabric(accelerator="cpu", strategy="double_step")
    assert type(fabric.strategy) is HalfStepStrategy
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=1.0))
    fabric.backward(model(torch.ones(1, 2)).sum() - torch.ones(1, 2).sum())  # gradient of w.x is x = 1
    optimizer.step()
    assert torch.equal(model.weight.detach(), torch.full((1, 2), -2.0)), "the add-on's strategy did not run"


def test_with_autoload_off_only_the_registered_add_on_loads(fabric_plugins: PluginSandbox) -> None:
    # The core suite runs with FABRIC_DISABLE_PLUGIN_AUTOLOAD=1 (tests/conftest.py).
    fabric_plugins.register(_addon_module(), distribution="fabric-inprocess")
    statuses = {record.distribution: record.status for record in fabric_plugins.discover().records}
    assert statuses.pop("fabric-core") == "loaded" and statuses.pop("fabric-inprocess") == "loaded"
    assert set(statuses.values()) <= {"not-allowed"}, statuses  # installed add-ons (deepspeed, ...) stay out


def test_a_registered_module_is_forgotten_after_the_test(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    from fabric_core import discovery

    with monkeypatch.context() as patch:
        sandbox = PluginSandbox(tmp_path / "site", patch)  # type: ignore[operator]
        sandbox.register(_addon_module("fabric_forgotten"), distribution="fabric-forgotten")
        assert "fabric_forgotten" in sys.modules
        sandbox.close()
    assert "fabric_forgotten" not in sys.modules
    assert not discovery.discover().records_for("fabric-forgotten")
    with pytest.raises(ValueError, match="Unknown strategy='double_step'"):
        Fabric(accelerator="cpu", strategy="double_step")


def test_installed_source_loads_here_and_in_a_child_process(fabric_plugins: PluginSandbox) -> None:
    fabric_plugins.install(
        "fabric-written",
        {
            "fabric_written.__init__": strategy_plugin("written", "fabric_written.strategy:Written"),
            "fabric_written.strategy": """
                from fabric_core.strategies import SingleDeviceStrategy

                class Written(SingleDeviceStrategy):
                    pass
            """,
        },
    )
    assert type(Fabric(accelerator="cpu", strategy="written").strategy).__name__ == "Written"
    code = "from fabric_core import Fabric; print(type(Fabric(strategy='written').strategy).__name__)"
    child = subprocess.run(
        [sys.executable, "-c", code], env=fabric_plugins.environment(), capture_output=True, text=True, timeout=120
    )
    assert child.stdout.strip() == "Written", child.stderr


def test_several_entry_points_of_one_distribution(fabric_plugins: PluginSandbox) -> None:
    fabric_plugins.register(_addon_module("fabric_two_a"), distribution="fabric-two", entry_point="a")
    fabric_plugins.register(types.ModuleType("fabric_two_b"), distribution="fabric-two", entry_point="b")
    records = fabric_plugins.discover().records_for("fabric-two")
    assert sorted((record.entry_point, record.status) for record in records) == [("a", "loaded"), ("b", "loaded")]
    with pytest.raises(LookupError, match=r"fabric_plugins.record\('fabric-two'\): discovery found several"):
        fabric_plugins.record("fabric-two")


def test_the_record_says_why_an_add_on_did_not_load(fabric_plugins: PluginSandbox) -> None:
    with pytest.warns(FabricPluginWarning, match="Skipping plugin fabric-future: .* requires fabric-core>=99"):
        record = fabric_plugins.register(_addon_module("fabric_future"), requires=["fabric-core>=99"])
    assert record.status == "incompatible"
    assert "requires fabric-core>=99" in record.reason


def test_load_only_loads_one_installed_add_on_with_autoload_off(fabric_plugins: PluginSandbox) -> None:
    pytest.importorskip("fabric_tensorboard", reason="fabric-tensorboard is not installed here")
    fabric_plugins.load_only("fabric-tensorboard")
    statuses = {record.distribution: record.status for record in fabric_plugins.discover().records}
    assert statuses["fabric-tensorboard"] == "loaded"
    others = {name: status for name, status in statuses.items() if name not in {"fabric-core", "fabric-tensorboard"}}
    assert set(others.values()) <= {"not-allowed"}, others


def test_mistakes_are_refused_with_what_to_do(fabric_plugins: PluginSandbox) -> None:
    with pytest.raises(ValueError, match=r"load_only\('fabric-nothere'\): no distribution 'fabric-nothere'.*Install"):
        fabric_plugins.load_only("fabric-nothere")
    with pytest.raises(TypeError, match="expected a module or an import path.*'module:attribute'"):
        fabric_plugins.register(object())  # type: ignore[arg-type]
    impostor = types.ModuleType("json")
    with pytest.raises(ValueError, match="another module named 'json' is imported already"):
        fabric_plugins.register(impostor)
    fabric_plugins.register(_addon_module("fabric_memory_only"))
    with pytest.raises(RuntimeError, match="fabric_memory_only was registered as a module object.*install"):
        fabric_plugins.environment()


def test_an_import_path_registers_like_an_entry_point(fabric_plugins: PluginSandbox, tmp_path: object) -> None:
    folder = fabric_plugins.root / "fabric_bypath"
    folder.mkdir()
    source = strategy_plugin("by_path", "fabric_core.strategies:SingleDeviceStrategy")
    (folder / "__init__.py").write_text(textwrap.dedent(source))
    record = fabric_plugins.register("fabric_bypath")
    assert (record.distribution, record.value, record.status) == ("fabric-bypath", "fabric_bypath", "loaded")
    assert type(Fabric(accelerator="cpu", strategy="by_path").strategy) is SingleDeviceStrategy
