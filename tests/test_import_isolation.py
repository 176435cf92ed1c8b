"""``import fabric_core`` is cheap and inert (DESIGN.md sections 1 and 4).

It imports no heavy backend and no add-on, loads no plugin and runs no discovery. Checked
in a fresh interpreter, where ``sys.modules`` tells the truth. Stand-in packages named
``deepspeed``, ``torch_xla``, ... sit on ``PYTHONPATH`` so that an accidental import would
succeed (and show up) rather than fail quietly inside a ``try``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests._fake_dist import FakeSite, strategy_plugin

HEAVY = ("deepspeed", "torch_xla", "tensorboard", "tensorboardX", "mlflow", "wandb")

_PROBE = """
import json, sys

def heavy():
    return sorted(
        name for name in sys.modules
        if name.split(".")[0] in HEAVY or name.startswith("torch.utils.tensorboard")
    )

def state():
    discovery = sys.modules.get("fabric_core._discovery")
    return {
        "heavy": heavy(),
        "torch": "torch" in sys.modules,
        "builtins": "fabric_core._builtins" in sys.modules,
        "addon_plugin": "fake_iso_plugin" in sys.modules,
        "addon_impl": "fake_iso_impl" in sys.modules,
        "discovery_module": discovery is not None,
        "cache_is_none": discovery is None or discovery._cache is None,
    }

import fabric_core
after_import = state()
from fabric_core._discovery import discover
discover()
after_discovery = state()
print(json.dumps({"after_import": after_import, "after_discovery": after_discovery}))
"""


def _stand_ins(root: Path) -> None:
    for name in HEAVY:
        package = root / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(f'"""A stand-in: fabric-core must never import {name}."""\n')


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What a fresh interpreter holds after ``import fabric_core``, then after discovery (run once)."""
    tmp_path = tmp_path_factory.mktemp("isolation")
    stand_ins = tmp_path / "stand_ins"
    _stand_ins(stand_ins)
    with pytest.MonkeyPatch.context() as monkeypatch, FakeSite(tmp_path / "site", monkeypatch) as site:
        site.add(
            "fabric-iso",
            modules={"fake_iso_plugin": strategy_plugin("iso", "fake_iso_impl:IsoStrategy"), "fake_iso_impl": ""},
            entry_points={"iso": "fake_iso_plugin"},
        )
        env = {key: value for key, value in os.environ.items() if not key.startswith("FABRIC_")}
        env["PYTHONPATH"] = os.pathsep.join([str(site.root), str(stand_ins)])  # autoload on
        code = f"HEAVY = {HEAVY!r}\n{_PROBE}"
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
        )
    assert result.returncode == 0, result.stderr
    state: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return state


def test_stand_ins_are_importable(tmp_path: Path) -> None:
    # Guards the probe: if the stand-ins could not be imported, "not in sys.modules" would prove nothing.
    _stand_ins(tmp_path)
    code = f"import {', '.join(HEAVY)}; print('ok')"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "ok", result.stderr


def test_import_fabric_core_imports_no_backend_and_runs_no_discovery(probe: dict[str, Any]) -> None:
    after_import = probe["after_import"]
    assert after_import["heavy"] == []
    assert after_import["torch"] is False  # Fabric and the other top-level names are imported on first use
    assert after_import["builtins"] is False  # no plugin module, not even the core's own
    assert after_import["addon_plugin"] is False
    assert after_import["cache_is_none"] is True


def test_discovery_imports_entry_point_modules_only(probe: dict[str, Any]) -> None:
    after_discovery = probe["after_discovery"]
    assert after_discovery["cache_is_none"] is False
    assert after_discovery["builtins"] is True
    assert after_discovery["addon_plugin"] is True  # the add-on's entry-point module...
    assert after_discovery["addon_impl"] is False  # ...but not the factory it registered
    assert after_discovery["heavy"] == []


_KIT_PROBE = """
import sys

def test_the_kit_is_loaded_without_torch(fabric_plugins):
    assert type(fabric_plugins).__name__ == "PluginSandbox"
    assert "torch" not in sys.modules, "the pytest11 test kit imported torch"

def test_kit_names_import_on_first_use():
    import fabric_core.testing as kit

    assert kit.find_free_port() > 0
    assert kit.StrategyConformance.__name__ == "StrategyConformance"
"""


@pytest.mark.timeout(120)
def test_the_pytest_test_kit_does_not_import_torch(tmp_path: Path) -> None:
    # Every pytest session of an environment with fabric-core loads fabric_core.testing
    # (pytest11 entry point): it must cost a project that never uses it nothing (torch
    # alone takes seconds to import). The fixture is requested without ``-p``, so the
    # test also fails if the entry point did not load the kit.
    (tmp_path / "test_probe.py").write_text(_KIT_PROBE)
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_probe.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
