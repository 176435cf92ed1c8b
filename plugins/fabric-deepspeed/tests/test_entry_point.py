"""The entry point: what it registers, what it imports, and what `fabric plugins` shows.

Discovery imports the entry-point module in every process; it must stay free of deepspeed
(and of anything heavy that fabric_core does not import already).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from fabric_core.discovery import lookup
from fabric_core.testing import (
    check_entry_point,
    check_import_is_light,
    check_listed_by_fabric_plugins,
    clean_environment,
    import_failure,
    run_script,
)

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
def test_fabric_plugins_lists_fabric_deepspeed_with_every_strategy(how: str) -> None:
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
        env=clean_environment(),
    )


SELECT = 'Fabric(accelerator="cpu", devices=1, strategy="deepspeed_stage_2")'


def test_broken_deepspeed_says_pip_install_deepspeed(tmp_path: Path) -> None:
    # A broken deepspeed package ahead of the real one on sys.path: importing it raises.
    broken = tmp_path / "site"
    (broken / "deepspeed").mkdir(parents=True)
    (broken / "deepspeed" / "__init__.py").write_text(
        'raise ImportError("simulated broken build: libdeepspeed_ops.so: cannot open shared object file")\n'
    )
    failure = import_failure(tmp_path, SELECT, env={"PYTHONPATH": str(broken)})
    assert failure.type == "DeepSpeedNotAvailableError", failure
    assert failure.message == (
        "strategy='deepspeed_stage_2' runs on DeepSpeed, but the deepspeed package failed to import (ImportError: "
        "simulated broken build: libdeepspeed_ops.so: cannot open shared object file). fabric-deepspeed is installed "
        "without a working deepspeed: pip install deepspeed (or pip install --force-reinstall deepspeed)"
    ), failure.message
    assert failure.cause.startswith("ImportError('simulated broken build"), failure.cause  # the original, chained


def test_missing_deepspeed_says_pip_install_deepspeed(
    tmp_path: Path,
) -> None:
    failure = import_failure(tmp_path, SELECT, missing=["deepspeed"])
    assert failure.type == "DeepSpeedNotAvailableError", failure
    assert failure.message == (
        "strategy='deepspeed_stage_2' runs on DeepSpeed, but the deepspeed package is not installed. "
        "fabric-deepspeed is installed without a working deepspeed: pip install deepspeed"
    ), failure.message
    # fabric plugins still lists the add-on: only a run that selects it needs deepspeed.
    listing = run_script(
        tmp_path, "import sys\nsys.modules['deepspeed'] = None\nfrom fabric_core.cli import main\nmain(['plugins'])"
    )
    assert "fabric-deepspeed 0.1.0  [loaded]" in listing.check()
