"""The entry point: what it registers, what it imports, and what `fabric plugins` shows.

Discovery imports the entry-point module in every process; it must stay free of deepspeed
(and of anything heavy that fabric_core does not import already).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fabric_core.discovery import lookup
from fabric_core.testing import check_entry_point, check_import_is_light, check_listed_by_fabric_plugins

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

#: everything the add-on registers
PROVIDES = {"strategies": NAMES, "commands": {"consolidate:deepspeed"}}


@pytest.fixture
def python(clean_env: Callable[..., dict[str, str]]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -c code`` with a clean environment (plugin autoload on)."""

    def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code], env=clean_env(**env), capture_output=True, text=True, timeout=120
        )

    return run


def test_entry_point_and_discovery_do_not_import_deepspeed(tmp_path: Path) -> None:
    check_import_is_light(
        tmp_path, "fabric_deepspeed", "fabric-deepspeed", heavy=["deepspeed"], lazy=["fabric_deepspeed.strategy"]
    )


def test_every_strategy_name_is_registered_with_its_init_params() -> None:
    check_entry_point("fabric-deepspeed", PROVIDES)
    assert set(STRATEGIES) == NAMES
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
        command = [script]
    else:
        command = [sys.executable, "-m", "fabric_core.cli"]
    check_listed_by_fabric_plugins(
        "fabric-deepspeed",
        version="0.1.0",
        entry_point="deepspeed = fabric_deepspeed",
        provides=PROVIDES,
        command=command,
        env=clean_env(),
    )


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
