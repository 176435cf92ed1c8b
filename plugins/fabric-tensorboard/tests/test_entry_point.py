"""The entry point: what it registers, what it imports, selection by name, and `fabric plugins`.

Discovery imports the entry-point module in every process; it must stay free of tensorboard
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

from fabric_tensorboard import DEFAULT_INIT_PARAMS, LOGGER_FACTORY, TensorBoardLogger

LIGHT_UNTIL_THE_FIRST_WRITE = """
# Selected by name: the logger's module is imported, but TensorBoard only at the first write.
fabric = Fabric(accelerator="cpu", loggers=["tensorboard"])
assert "fabric_tensorboard.logger" in sys.modules
assert not heavy_modules(), heavy_modules()
fabric.log("x", 1.0, step=0)
assert "torch.utils.tensorboard" in sys.modules
"""


@pytest.fixture
def python(clean_env: Callable[..., dict[str, str]], tmp_path: Path) -> Callable[..., Any]:
    """Run ``python -c code`` in ``tmp_path`` with a clean environment (plugin autoload on)."""

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


MISSING = """
import sys
sys.modules["tensorboard"] = None  # as if the package were not installed
from fabric_core import Fabric
try:
    Fabric(accelerator="cpu", loggers=["tensorboard"])
except ModuleNotFoundError as err:
    print("ERROR:", err)
    sys.exit(0)
print("NO ERROR")
"""


def test_missing_tensorboard_says_pip_install_tensorboard(python: Callable[..., Any]) -> None:
    result = python(MISSING)
    assert result.returncode == 0, result.stderr
    assert (
        "ERROR: TensorBoardLogger writes with the tensorboard package, which is not installed. "
        "pip install tensorboard (or reinstall fabric-tensorboard, which depends on it)."
    ) in result.stdout


BROKEN = """
import sys
from fabric_tensorboard import TensorBoardLogger
logger = TensorBoardLogger("logs")
sys.modules["torch.utils.tensorboard"] = None  # a broken installation: the import fails
try:
    logger.log_metrics({"x": 1.0}, step=0)
except ImportError as err:
    print("ERROR:", err)
    print("CAUSE:", repr(err.__cause__))
"""


def test_a_broken_tensorboard_names_the_cause_and_the_fix(python: Callable[..., Any]) -> None:
    result = python(BROKEN)
    assert result.returncode == 0, result.stderr
    assert "ERROR: TensorBoardLogger could not import torch.utils.tensorboard (ModuleNotFoundError: " in result.stdout
    assert "pip install --force-reinstall tensorboard" in result.stdout
    assert "CAUSE: ModuleNotFoundError(" in result.stdout
