"""LSFEnvironment: jsrun's variables and LSF's rank file."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from fabric_core.environments import LSFEnvironment


def test_not_detected_without_lsf() -> None:
    assert not LSFEnvironment.detect()


def test_detected_with_rank_file(lsf_env: Path) -> None:
    assert LSFEnvironment.detect()


def test_detected_with_lsb_hosts(lsf_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LSB_DJOB_RANKFILE")
    monkeypatch.setenv("LSB_HOSTS", "batch1 h1 h1")
    assert LSFEnvironment.detect()


@pytest.mark.parametrize("missing", ["LSB_JOBID", "LSB_DJOB_RANKFILE", "JSM_NAMESPACE_SIZE", "JSM_NAMESPACE_RANK"])
def test_not_detected_when_a_variable_is_missing(lsf_env: Path, monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    monkeypatch.delenv(missing)
    assert not LSFEnvironment.detect()


def test_an_lsf_job_without_jsrun_is_not_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    # bsub alone sets LSB_* but the processes were not started by jsrun
    monkeypatch.setenv("LSB_JOBID", "1")
    monkeypatch.setenv("LSB_HOSTS", "batch1 h1")
    assert not LSFEnvironment.detect()


def test_ranks_and_world_size(lsf_env: Path) -> None:
    env = LSFEnvironment()
    assert (env.world_size(), env.global_rank(), env.local_rank()) == (4, 1, 1)
    assert env.creates_processes_externally is True


def test_node_rank_is_the_position_of_this_host(lsf_env: Path) -> None:
    # rank file: batch7, <this host> x2, other-host x2 -> this host is node 0
    assert LSFEnvironment().node_rank() == 0
    lsf_env.write_text(f"batch7\nother-host\nother-host\n{socket.gethostname()}\n{socket.gethostname()}\n")
    assert LSFEnvironment().node_rank() == 1


def test_node_rank_matches_short_and_long_host_names(lsf_env: Path) -> None:
    short = socket.gethostname().split(".")[0]
    lsf_env.write_text(f"batch7\nother-host\n{short}.cluster.example.org\n")
    assert LSFEnvironment().node_rank() == 1


def test_unknown_host_is_reported(lsf_env: Path) -> None:
    lsf_env.write_text("batch7\nsomewhere-else-1\nsomewhere-else-2\n")
    with pytest.raises(RuntimeError, match=r"is not among the job's hosts \['somewhere-else-1', 'somewhere-else-2'\]"):
        LSFEnvironment().node_rank()


# This machine must be in the host list: as in Lightning, the environment finds its node
# rank when it is created.


def test_main_address_skips_the_launch_node(lsf_env: Path) -> None:
    assert LSFEnvironment().main_address == socket.gethostname()
    lsf_env.write_text(f"batch7\nh3\nh3\n{socket.gethostname()}\n\n")
    assert LSFEnvironment().main_address == "h3"
    assert LSFEnvironment.hosts() == ["h3", "h3", socket.gethostname()]


def test_hosts_from_lsb_hosts(lsf_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LSB_DJOB_RANKFILE")
    host = socket.gethostname()
    monkeypatch.setenv("LSB_HOSTS", f"login2 h7 h7 {host} {host}")
    env = LSFEnvironment()
    assert env.main_address == "h7"
    assert env.hosts() == ["h7", "h7", host, host]


def test_single_entry_host_list(lsf_env: Path) -> None:
    lsf_env.write_text(f"{socket.gethostname()}\n")
    assert LSFEnvironment().main_address == socket.gethostname()


def test_host_list_without_this_machine_fails_at_construction(lsf_env: Path) -> None:
    lsf_env.write_text("batch7\nh3\nh4\n")
    with pytest.raises(ValueError, match=r"this machine \(.*\) is not among the job's hosts \['h3', 'h4'\]"):
        LSFEnvironment()


def test_missing_rank_file_is_reported(lsf_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSB_DJOB_RANKFILE", str(tmp_path / "nope"))
    with pytest.raises(RuntimeError, match="cannot read the rank file LSB_DJOB_RANKFILE="):
        _ = LSFEnvironment().main_address


def test_empty_host_list_is_reported(lsf_env: Path) -> None:
    lsf_env.write_text("\n")
    with pytest.raises(RuntimeError, match="found no host in LSB_DJOB_RANKFILE"):
        _ = LSFEnvironment().main_address


@pytest.mark.parametrize(("job_id", "port"), [("123456", 10456), ("7", 10007), ("1000", 10000)])
def test_main_port_from_the_job_id(lsf_env: Path, monkeypatch: pytest.MonkeyPatch, job_id: str, port: int) -> None:
    monkeypatch.setenv("LSB_JOBID", job_id)
    assert LSFEnvironment().main_port == port


def test_master_port_wins(lsf_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASTER_PORT", "23456")
    assert LSFEnvironment().main_port == 23456


def test_local_world_size(lsf_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert LSFEnvironment().local_world_size() == 2  # two slots of this host in the rank file
    monkeypatch.setenv("JSM_NAMESPACE_LOCAL_SIZE", "6")
    assert LSFEnvironment().local_world_size() == 6


def test_set_world_size_and_rank_are_ignored(lsf_env: Path) -> None:
    env = LSFEnvironment()
    env.set_world_size(1)
    env.set_global_rank(0)
    assert (env.world_size(), env.global_rank()) == (4, 1)


def test_validate_settings(lsf_env: Path) -> None:
    LSFEnvironment().validate_settings(num_devices=2, num_nodes=2)
    with pytest.raises(ValueError, match=r"devices=1, num_nodes=1\).*JSM_NAMESPACE_SIZE=4"):
        LSFEnvironment().validate_settings(num_devices=1, num_nodes=1)


def test_missing_rank_says_jsrun(lsf_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JSM_NAMESPACE_RANK")
    with pytest.raises(RuntimeError, match="JSM_NAMESPACE_RANK.*jsrun"):
        LSFEnvironment().global_rank()
