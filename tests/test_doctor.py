"""``fabric doctor`` and ``fabric plugins --requirements``, run as the real command in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.helpers.processes import ROOT

_LAUNCH_PREFIXES = ("FABRIC_", "TORCHELASTIC_", "SLURM_", "LSB_", "OMPI_", "PMI_", "KUBERNETES_")
_LAUNCH_NAMES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "MASTER_PORT")


def _fabric(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_LAUNCH_PREFIXES) and name not in _LAUNCH_NAMES
    }
    env.update({"PYTHONPATH": str(ROOT), "FABRIC_DISABLE_PLUGIN_AUTOLOAD": "1", **variables})
    return subprocess.run(
        [sys.executable, "-m", "fabric_core", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_doctor_prints_every_section_and_no_problem_on_a_clean_machine() -> None:
    result = _fabric("doctor")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for heading in ("versions:", "devices:", "distributed backends:", "cluster environment: local", "plugins:"):
        assert heading in out
    assert f"  torch: {torch.__version__}" in out
    assert "  fabric-core 0.1.0 [loaded]" in out
    assert "gloo" in out
    assert "problems: none found" in out


def test_doctor_json_names_a_leftover_local_rank() -> None:
    result = _fabric("doctor", "--json", LOCAL_RANK="1")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["cluster_environment"] == "local"
    assert data["variables"]["LOCAL_RANK"] == "1"
    assert data["variables"]["FABRIC_DISABLE_PLUGIN_AUTOLOAD"] == "1"
    assert data["problems"] == [
        "LOCAL_RANK=1 is set, but no launcher was detected: a plain `python train.py` with several devices will "
        "wait for processes nobody starts. Unset it (a leftover in your shell?)."
    ]


def test_doctor_reports_a_broken_cluster_environment_instead_of_failing() -> None:
    result = _fabric(
        "doctor",
        "--json",
        SLURM_JOB_ID="1",
        SLURM_JOB_NAME="train",
        SLURM_NTASKS="2",
        SLURM_PROCID="5",
        SLURM_LOCALID="0",
        SLURM_NODEID="0",
        SLURM_NODELIST="node1",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["cluster_environment"] == "unknown"
    (problem,) = data["problems"]
    assert problem.startswith("the cluster environment could not be read: ")
    assert "SLURM_PROCID" in problem


@pytest.mark.parametrize("autoload", ["0", "1"])
def test_plugins_requirements_pins_what_is_installed(autoload: str) -> None:
    result = _fabric("plugins", "--requirements", FABRIC_DISABLE_PLUGIN_AUTOLOAD=autoload)
    assert result.returncode == 0, result.stderr
    pins = result.stdout.split()
    assert "fabric-core==0.1.0" in pins
    assert f"torch=={torch.__version__}" in pins
    assert any(pin.startswith("pluggy==") for pin in pins)
    assert all("==" in pin for pin in pins)
    assert not any(pin.startswith(("pytest==", "ruff==", "mypy==")) for pin in pins)  # extras are not run deps
