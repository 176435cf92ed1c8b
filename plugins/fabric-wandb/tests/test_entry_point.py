"""The entry point: what it registers, what it imports, selection by name, and `fabric plugins`.

Discovery imports the entry-point module in every process; it must stay free of wandb
(and of anything heavy that fabric_core does not import already).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fabric_core import Fabric
from fabric_core.discovery import lookup
from fabric_core.testing import check_entry_point, check_import_is_light, check_listed_by_fabric_plugins

from fabric_wandb import DEFAULT_INIT_PARAMS, LOGGER_FACTORY, WandbLogger

LIGHT_UNTIL_THE_RUN_STARTS = """
# Selected by name: the logger's module is imported, but wandb only when the run starts.
fabric = Fabric(accelerator="cpu", loggers=["wandb"])
assert "fabric_wandb.logger" in sys.modules
assert not heavy_modules(), heavy_modules()
fabric.log("x", 1.0, step=0)
assert "wandb" in sys.modules
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


def test_entry_point_and_discovery_do_not_import_wandb(
    tmp_path: Path, clean_env: Callable[..., dict[str, str]]
) -> None:
    check_import_is_light(
        tmp_path,
        "fabric_wandb",
        "fabric-wandb",
        heavy=["wandb"],
        lazy=["fabric_wandb.logger"],
        then=LIGHT_UNTIL_THE_RUN_STARTS,
        env=clean_env(),
    )


def test_the_logger_name_is_registered_lazily() -> None:
    record = check_entry_point("fabric-wandb", {"loggers": ["wandb"]})
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


def test_fabric_plugins_lists_fabric_wandb(clean_env: Callable[..., dict[str, str]]) -> None:
    check_listed_by_fabric_plugins(
        "fabric-wandb",
        version="0.1.0",
        entry_point="wandb = fabric_wandb",
        provides={"loggers": ["wandb"]},
        env=clean_env(),
    )


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
