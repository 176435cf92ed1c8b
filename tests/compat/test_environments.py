"""Cluster environments behave as Lightning Fabric documents them, imported from
``fabric_core.plugins.environments``."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from fabric_core.plugins.environments import (
    KubeflowEnvironment,
    LightningEnvironment,
    LSFEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)


def test_lightning_environment_reads_the_launcher_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    env = LightningEnvironment()
    assert (env.main_address, env.local_rank(), env.node_rank(), env.world_size()) == ("127.0.0.1", 0, 0, 1)
    assert not env.creates_processes_externally
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("NODE_RANK", "2")
    monkeypatch.setenv("MASTER_PORT", "29777")
    env = LightningEnvironment()
    assert (env.local_rank(), env.node_rank(), env.main_port) == (1, 2, 29777)
    assert env.creates_processes_externally


def test_lightning_environment_teardown_removes_world_size() -> None:
    env = LightningEnvironment()
    os.environ["WORLD_SIZE"] = "2"  # what a launch writes
    env.teardown()
    assert "WORLD_SIZE" not in os.environ


def test_lightning_environment_names_a_malformed_local_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_RANK", "abc")
    with pytest.raises(ValueError, match=r"LOCAL_RANK='abc' is not an integer"):
        LightningEnvironment()


def test_torchelastic_detection_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not TorchElasticEnvironment.detect()
    for name, value in {"TORCHELASTIC_RUN_ID": "abc", "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    assert TorchElasticEnvironment.detect()
    env = TorchElasticEnvironment()
    assert (env.main_address, env.main_port) == ("127.0.0.1", 12910)
    assert (env.global_rank(), env.local_rank(), env.world_size(), env.node_rank()) == (1, 1, 2, 0)


def test_torchelastic_names_a_malformed_master_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc")
    monkeypatch.setenv("MASTER_PORT", "x")
    with pytest.raises(ValueError, match=r"TorchElasticEnvironment: MASTER_PORT='x' is not an integer"):
        TorchElasticEnvironment()


def test_slurm_requeues_on_sigusr1_by_default() -> None:
    env = SLURMEnvironment()
    assert env.auto_requeue is True
    assert env.requeue_signal == signal.SIGUSR1
    assert SLURMEnvironment(auto_requeue=False).auto_requeue is False


def test_slurm_procid_outside_ntasks_is_an_error_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_PROCID", "2")
    with pytest.raises(RuntimeError, match=r"SLURM_PROCID=2 is not below SLURM_NTASKS=2"):
        SLURMEnvironment()


def test_slurm_reads_ranks_from_srun_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_NODEID": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    assert SLURMEnvironment.detect()
    env = SLURMEnvironment(auto_requeue=False)
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (4, 3, 1, 1)
    monkeypatch.setenv("SLURM_JOB_NAME", "bash")  # an interactive allocation: Fabric launches itself
    assert not SLURMEnvironment.detect()


def test_lsf_without_a_job_fails_at_construction_with_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"LSFEnvironment needs the environment variable LSB_JOBID"):
        LSFEnvironment()


def test_lsf_reads_jsrun_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    rankfile = tmp_path / "rankfile"
    rankfile.write_text(f"launch\n{socket.gethostname()}\n{socket.gethostname()}\n")
    for name, value in {
        "LSB_JOBID": "1234",
        "LSB_DJOB_RANKFILE": str(rankfile),
        "JSM_NAMESPACE_SIZE": "2",
        "JSM_NAMESPACE_RANK": "1",
        "JSM_NAMESPACE_LOCAL_RANK": "1",
    }.items():
        monkeypatch.setenv(name, value)
    assert LSFEnvironment.detect()
    env = LSFEnvironment()
    assert (env.main_address, env.main_port, env.node_rank()) == (socket.gethostname(), 10234, 0)
    assert (env.world_size(), env.global_rank(), env.local_rank()) == (2, 1, 1)


def test_kubeflow_needs_its_variables_and_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"MASTER_ADDR": "master-0", "MASTER_PORT": "23456", "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(KeyError, match=r"KubeflowEnvironment needs the environment variable RANK, which is not set"):
        KubeflowEnvironment()
    monkeypatch.setenv("RANK", "1")
    env = KubeflowEnvironment()
    assert (env.global_rank(), env.node_rank(), env.local_rank(), env.world_size()) == (1, 1, 0, 2)
