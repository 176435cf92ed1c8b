"""The entry point: what it registers, what it imports, selection by name, and `fabric plugins`.

Discovery imports the entry-point module in every process; it must stay free of wandb
(and of anything heavy that fabric_core does not import already).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fabric_core import Fabric
from fabric_core.discovery import lookup
from fabric_core.testing import (
    check_entry_point,
    check_import_is_light,
    check_listed_by_fabric_plugins,
    import_failure,
)

from fabric_wandb import DEFAULT_INIT_PARAMS, LOGGER_FACTORY, WandbLogger

LIGHT_UNTIL_THE_RUN_STARTS = """
# Selected by name: the logger's module is imported, but wandb only when the run starts.
fabric = Fabric(accelerator="cpu", loggers=["wandb"])
assert "fabric_wandb.logger" in sys.modules
assert not heavy_modules(), heavy_modules()
fabric.log("x", 1.0, step=0)
assert "wandb" in sys.modules
"""


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


def test_missing_wandb_says_pip_install_wandb(tmp_path: Path, clean_env: Callable[..., dict[str, str]]) -> None:
    failure = import_failure(
        tmp_path, 'Fabric(accelerator="cpu", loggers=["wandb"])', missing=["wandb"], env=clean_env()
    )
    assert failure.type == "ModuleNotFoundError", failure
    assert failure.message.startswith(
        "WandbLogger logs with the wandb package, which is not installed. "
        "pip install wandb (or reinstall fabric-wandb, which depends on it)."
    ), failure.message


def test_a_broken_wandb_names_the_cause_and_the_fix(tmp_path: Path, clean_env: Callable[..., dict[str, str]]) -> None:
    failure = import_failure(
        tmp_path,
        'logger.log_metrics({"x": 1.0}, step=0)',
        setup="from fabric_wandb import WandbLogger\nlogger = WandbLogger()",
        missing=["wandb"],  # a broken installation: the import fails
        env=clean_env(),
    )
    assert failure.message.startswith("WandbLogger could not import wandb (ModuleNotFoundError: "), failure.message
    assert "pip install --force-reinstall wandb" in failure.message
    assert failure.cause.startswith("ModuleNotFoundError("), failure.cause
