"""The entry point: what it registers, what it imports, selection by name, and `fabric plugins`.

Discovery imports the entry-point module in every process; it must stay free of tensorboard
(and of anything heavy that fabric_core does not import already).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fabric_core import Fabric
from fabric_core.discovery import lookup
from fabric_core.testing import (
    check_entry_point,
    check_import_is_light,
    check_listed_by_fabric_plugins,
    import_failure,
)

from fabric_tensorboard import DEFAULT_INIT_PARAMS, LOGGER_FACTORY, TensorBoardLogger

LIGHT_UNTIL_THE_FIRST_WRITE = """
# Selected by name: the logger's module is imported, but TensorBoard only at the first write.
fabric = Fabric(accelerator="cpu", loggers=["tensorboard"])
assert "fabric_tensorboard.logger" in sys.modules
assert not heavy_modules(), heavy_modules()
fabric.log("x", 1.0, step=0)
assert "torch.utils.tensorboard" in sys.modules
"""


def test_entry_point_and_discovery_do_not_import_tensorboard(tmp_path: Path) -> None:
    check_import_is_light(
        tmp_path,
        "fabric_tensorboard",
        "fabric-tensorboard",
        heavy=["tensorboard", "tensorboardX", "torch.utils.tensorboard"],
        lazy=["fabric_tensorboard.logger"],
        then=LIGHT_UNTIL_THE_FIRST_WRITE,
    )


def test_the_logger_name_is_registered_lazily() -> None:
    record = check_entry_point("fabric-tensorboard", {"loggers": ["tensorboard"]})
    assert list(record.provides["loggers"]) == ["tensorboard"]
    entry = lookup("logger", "tensorboard")
    assert entry.factory == LOGGER_FACTORY == "fabric_tensorboard.logger:TensorBoardLogger"
    assert entry.distribution == "fabric-tensorboard"
    assert dict(entry.init_params) == DEFAULT_INIT_PARAMS == {"root_dir": "logs"}


def test_fabric_selects_the_logger_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, events: Callable[[str | Path], Any]
) -> None:
    monkeypatch.chdir(tmp_path)
    fabric = Fabric(accelerator="cpu", loggers=["csv", "tensorboard"])
    assert type(fabric.loggers[0]).__name__ == "CSVLogger"
    logger = fabric.loggers[1]
    assert isinstance(logger, TensorBoardLogger)
    assert logger.log_dir == str(Path("logs", "lightning_logs", "version_0"))

    def run(fabric: Fabric) -> None:
        fabric.log_dict({"loss": 0.5, "acc": 0.25}, step=4)

    fabric.launch(run)
    run_events = events(tmp_path / "logs" / "lightning_logs" / "version_0")
    assert run_events.scalars("loss") == [(4, 0.5)]
    assert run_events.scalars("acc") == [(4, 0.25)]


def test_core_lazy_path_resolves_to_this_class() -> None:
    import fabric_core.loggers

    try:
        core_class = fabric_core.loggers.TensorBoardLogger  # type: ignore[attr-defined]
    except AttributeError:
        pytest.skip("this fabric-core has no lazy fabric_core.loggers.TensorBoardLogger yet")
    assert core_class is TensorBoardLogger


def test_fabric_plugins_lists_fabric_tensorboard(clean_env: Callable[..., dict[str, str]]) -> None:
    check_listed_by_fabric_plugins(
        "fabric-tensorboard",
        version="0.1.0",
        entry_point="tensorboard = fabric_tensorboard",
        provides={"loggers": ["tensorboard"]},
        env=clean_env(),
    )


def test_missing_tensorboard_says_pip_install_tensorboard(
    tmp_path: Path, clean_env: Callable[..., dict[str, str]]
) -> None:
    failure = import_failure(
        tmp_path, 'Fabric(accelerator="cpu", loggers=["tensorboard"])', missing=["tensorboard"], env=clean_env()
    )
    assert failure.type == "ModuleNotFoundError", failure
    assert failure.message.startswith(
        "TensorBoardLogger writes with the tensorboard package, which is not installed. "
        "pip install tensorboard (or reinstall fabric-tensorboard, which depends on it)."
    ), failure.message


def test_a_broken_tensorboard_names_the_cause_and_the_fix(
    tmp_path: Path, clean_env: Callable[..., dict[str, str]]
) -> None:
    failure = import_failure(
        tmp_path,
        'logger.log_metrics({"x": 1.0}, step=0)',
        setup='from fabric_tensorboard import TensorBoardLogger\nlogger = TensorBoardLogger("logs")',
        missing=["torch.utils.tensorboard"],  # a broken installation: the import fails
        env=clean_env(),
    )
    expected = "TensorBoardLogger could not import torch.utils.tensorboard (ModuleNotFoundError: "
    assert failure.message.startswith(expected), failure.message
    assert "pip install --force-reinstall tensorboard" in failure.message
    assert failure.cause.startswith("ModuleNotFoundError("), failure.cause
