"""The entry point: what it registers, what it imports, selection by name, and `fabric plugins`.

Discovery imports the entry-point module in every process; it must stay free of wandb
(and of anything heavy that fabric_core does not import already).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fabric_core import Fabric
from fabric_core.discovery import discover, lookup

from fabric_wandb import DEFAULT_INIT_PARAMS, LOGGER_FACTORY, WandbLogger

ISOLATION = """
import sys

def wandb_modules():
    return sorted(name for name in sys.modules if name.split(".")[0] == "wandb")

import fabric_core
assert not wandb_modules(), wandb_modules()
from fabric_core import Fabric

before = set(sys.modules)
import fabric_wandb
added = sorted(set(sys.modules) - before)
assert all(name == "fabric_wandb" or name.startswith("fabric_core.") for name in added), added

from fabric_core.discovery import discover
(record,) = discover().records_for("fabric-wandb")
assert record.status == "loaded", record
Fabric(accelerator="cpu", devices=1)  # a whole run's discovery and selection, without the logger
assert not wandb_modules(), wandb_modules()
assert "fabric_wandb.logger" not in sys.modules

# Selected by name: the logger's module is imported, but wandb only when the run starts.
fabric = Fabric(accelerator="cpu", loggers=["wandb"])
assert "fabric_wandb.logger" in sys.modules
assert not wandb_modules(), wandb_modules()
fabric.log("x", 1.0, step=0)
assert "wandb" in sys.modules
print("ISOLATED", added)
"""


@pytest.fixture
def python(clean_env: Callable[..., dict[str, str]], tmp_path: Path) -> Callable[..., Any]:
    """Run ``python -c code`` in ``tmp_path`` with a clean environment (plugin autoload on, W&B offline)."""

    def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=clean_env(**env),
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def test_entry_point_and_discovery_do_not_import_wandb(python: Callable[..., Any]) -> None:
    result = python(ISOLATION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ISOLATED" in result.stdout


def test_the_logger_name_is_registered_lazily() -> None:
    (record,) = discover().records_for("fabric-wandb")
    assert record.status == "loaded", record.reason
    assert list(record.provides["loggers"]) == ["wandb"]
    entry = lookup("logger", "wandb")
    assert entry.factory == LOGGER_FACTORY == "fabric_wandb.logger:WandbLogger"
    assert entry.distribution == "fabric-wandb"
    assert dict(entry.init_params) == DEFAULT_INIT_PARAMS == {}


def test_fabric_selects_the_logger_by_name(tmp_path: Path, run_file: Callable[[str | Path], Any]) -> None:
    fabric = Fabric(accelerator="cpu", loggers=["csv", "wandb"])
    assert type(fabric.loggers[0]).__name__ == "CSVLogger"
    logger = fabric.loggers[1]
    assert isinstance(logger, WandbLogger)
    assert (logger.save_dir, logger.name) == (str(tmp_path), "lightning_logs")  # $WANDB_DIR, Lightning's project

    def run(fabric: Fabric) -> None:
        fabric.log_dict({"loss": 0.5, "acc": 0.25}, step=4)

    fabric.launch(run)
    assert Path(logger.log_dir).parent == tmp_path / "wandb"
    assert run_file(logger.log_dir).history() == [{"loss": 0.5, "acc": 0.25, "trainer/global_step": 4}]


@pytest.mark.parametrize("flag", ["", "--json"])
def test_fabric_plugins_lists_fabric_wandb(flag: str, clean_env: Callable[..., dict[str, str]]) -> None:
    command = [sys.executable, "-m", "fabric_core.cli", "plugins", *([flag] if flag else [])]
    result = subprocess.run(command, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    if flag:
        records = [r for r in json.loads(result.stdout)["plugins"] if r["distribution"] == "fabric-wandb"]
        assert len(records) == 1, records
        assert records[0]["status"] == "loaded", records[0]
        assert records[0]["entry_point"] == "wandb = fabric_wandb"
        assert records[0]["provides"]["loggers"] == ["wandb"]
    else:
        assert "fabric-wandb 0.1.0  [loaded]  (wandb = fabric_wandb)" in result.stdout
        assert "    loggers: wandb" in result.stdout


MISSING = """
import sys
sys.modules["wandb"] = None  # as if the package were not installed
from fabric_core import Fabric
try:
    Fabric(accelerator="cpu", loggers=["wandb"])
except ModuleNotFoundError as err:
    print("ERROR:", err)
    sys.exit(0)
print("NO ERROR")
"""


def test_missing_wandb_says_pip_install_wandb(python: Callable[..., Any]) -> None:
    result = python(MISSING)
    assert result.returncode == 0, result.stderr
    assert (
        "ERROR: WandbLogger logs with the wandb package, which is not installed. "
        "pip install wandb (or reinstall fabric-wandb, which depends on it)."
    ) in result.stdout


BROKEN = """
import sys
from fabric_wandb import WandbLogger
logger = WandbLogger()
sys.modules["wandb"] = None  # a broken installation: the import fails
try:
    logger.log_metrics({"x": 1.0}, step=0)
except ImportError as err:
    print("ERROR:", err)
    print("CAUSE:", repr(err.__cause__))
"""


def test_a_broken_wandb_names_the_cause_and_the_fix(python: Callable[..., Any]) -> None:
    result = python(BROKEN)
    assert result.returncode == 0, result.stderr
    assert "ERROR: WandbLogger could not import wandb (ModuleNotFoundError: " in result.stdout
    assert "pip install --force-reinstall wandb" in result.stdout
    assert "CAUSE: ModuleNotFoundError(" in result.stdout
