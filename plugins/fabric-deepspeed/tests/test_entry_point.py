"""The entry point: what it registers, what it imports, and what `fabric plugins` shows.

Discovery imports the entry-point module in every process; it must stay free of deepspeed
(and of anything heavy that fabric_core does not import already).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fabric_core.discovery import discover, lookup

from fabric_deepspeed import STRATEGIES

NAMES = {
    "deepspeed",
    "deepspeed_stage_1",
    "deepspeed_stage_2",
    "deepspeed_stage_3",
    "deepspeed_stage_1_offload",
    "deepspeed_stage_2_offload",
    "deepspeed_stage_3_offload",
    "deepspeed_stage_3_offload_nvme",
}

ISOLATION = """
import sys
import fabric_core
from fabric_core import Fabric
before = set(sys.modules)
import fabric_deepspeed
added = sorted(set(sys.modules) - before)
assert all(name == "fabric_deepspeed" or name.startswith("fabric_core.") for name in added), added
assert "deepspeed" not in sys.modules

from fabric_core.discovery import discover
(record,) = discover().records_for("fabric-deepspeed")
assert record.status == "loaded", record
Fabric(accelerator="cpu", devices=1)  # a whole run's discovery and selection, without DeepSpeed
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "deepspeed")
assert not loaded, loaded
assert "fabric_deepspeed.strategy" not in sys.modules
print("ISOLATED", added)
"""


@pytest.fixture
def python(clean_env: Callable[..., dict[str, str]]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -c code`` with a clean environment (plugin autoload on)."""

    def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code], env=clean_env(**env), capture_output=True, text=True, timeout=120
        )

    return run


def test_entry_point_and_discovery_do_not_import_deepspeed(python: Callable[..., Any]) -> None:
    result = python(ISOLATION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ISOLATED" in result.stdout


def test_every_strategy_name_is_registered_with_its_init_params() -> None:
    (record,) = discover().records_for("fabric-deepspeed")
    assert record.status == "loaded", record.reason
    assert set(record.provides["strategies"]) == NAMES == set(STRATEGIES)
    for name in NAMES:
        entry = lookup("strategy", name)
        assert entry.factory == "fabric_deepspeed.strategy:DeepSpeedStrategy"
        assert entry.distribution == "fabric-deepspeed"
        assert dict(entry.init_params) == STRATEGIES[name][0]
    assert dict(lookup("strategy", "deepspeed_stage_3_offload").init_params) == {
        "stage": 3,
        "offload_optimizer": True,
        "offload_parameters": True,
    }


@pytest.mark.parametrize("how", ["module", "script"])
def test_fabric_plugins_lists_fabric_deepspeed_with_every_strategy(
    how: str, clean_env: Callable[..., dict[str, str]]
) -> None:
    if how == "script":
        script = shutil.which("fabric", path=str(Path(sys.executable).parent))
        if script is None:
            pytest.skip("the `fabric` console script is not installed next to this Python")
        command = [script, "plugins", "--json"]
    else:
        command = [sys.executable, "-m", "fabric_core.cli", "plugins", "--json"]
    result = subprocess.run(command, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    records = [r for r in json.loads(result.stdout)["plugins"] if r["distribution"] == "fabric-deepspeed"]
    assert len(records) == 1, records
    assert records[0]["status"] == "loaded", records[0]
    assert records[0]["entry_point"] == "deepspeed = fabric_deepspeed"
    assert set(records[0]["provides"]["strategies"]) == NAMES

    text = subprocess.run(
        [sys.executable, "-m", "fabric_core.cli", "plugins"], env=clean_env(), capture_output=True, text=True
    ).stdout
    assert "fabric-deepspeed 0.1.0  [loaded]  (deepspeed = fabric_deepspeed)" in text
    line = next(line for line in text.splitlines() if line.strip().startswith("strategies: deepspeed"))
    assert set(line.split(":", 1)[1].replace(" ", "").split(",")) == NAMES


BROKEN = """
raise ImportError("simulated broken build: libdeepspeed_ops.so: cannot open shared object file")
"""

SELECT = """
import sys
from fabric_core import Fabric
try:
    Fabric(accelerator="cpu", devices=1, strategy="deepspeed_stage_2")
except ImportError as err:
    print("ERROR:", err)
    print("CAUSE:", repr(err.__cause__))
    sys.exit(0)
print("NO ERROR")
"""


def test_broken_deepspeed_says_pip_install_deepspeed(tmp_path: Path, python: Callable[..., Any]) -> None:
    # A broken deepspeed package ahead of the real one on sys.path: importing it raises.
    (tmp_path / "deepspeed").mkdir()
    (tmp_path / "deepspeed" / "__init__.py").write_text(BROKEN)
    result = python(SELECT, PYTHONPATH=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "ERROR: strategy='deepspeed_stage_2' runs on DeepSpeed, but the deepspeed package failed to import" in (
        result.stdout
    )
    assert "pip install deepspeed" in result.stdout
    assert "simulated broken build" in result.stdout  # the original error, named and chained
    assert "CAUSE: ImportError('simulated broken build" in result.stdout


def test_missing_deepspeed_says_pip_install_deepspeed(python: Callable[..., Any]) -> None:
    # ``sys.modules["deepspeed"] = None`` makes ``import deepspeed`` fail as for a missing package.
    result = python("import sys\nsys.modules['deepspeed'] = None\n" + SELECT)
    assert result.returncode == 0, result.stderr
    assert "the deepspeed package is not installed" in result.stdout
    assert "pip install deepspeed" in result.stdout
    # fabric plugins still lists the add-on: only a run that selects it needs deepspeed.
    listing = python("import sys\nsys.modules['deepspeed'] = None\nfrom fabric_core.cli import main\nmain(['plugins'])")
    assert "fabric-deepspeed 0.1.0  [loaded]" in listing.stdout, listing.stderr
