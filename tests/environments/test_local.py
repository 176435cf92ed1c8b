"""LocalEnvironment (Lightning's LightningEnvironment): what it reads, what its teardown
removes, and errors that name a malformed variable."""

from __future__ import annotations

import os

import pytest

from fabric_core.environments import LocalEnvironment
from fabric_core.environments._variables import EnvironmentVariableError
from fabric_core.utilities.rank_zero import rank_zero_only


def test_defaults_outside_any_launcher() -> None:
    env = LocalEnvironment()
    assert env.main_address == "127.0.0.1"
    port = env.main_port
    assert 0 < port < 65536 and env.main_port == port  # chosen once
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (1, 0, 0, 0)
    assert env.creates_processes_externally is False


def test_reads_what_a_launcher_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29511", "LOCAL_RANK": "1", "NODE_RANK": "2"}.items():
        monkeypatch.setenv(name, value)
    env = LocalEnvironment()
    assert (env.main_address, env.main_port, env.local_rank(), env.node_rank()) == ("10.0.0.1", 29511, 1, 2)
    assert env.creates_processes_externally is True


def test_group_rank_is_the_node_rank_without_node_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROUP_RANK", "3")
    assert LocalEnvironment().node_rank() == 3


def test_set_global_rank_also_sets_the_rank_zero_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    env = LocalEnvironment()
    env.set_global_rank(3)
    env.set_world_size(4)
    assert (env.global_rank(), env.world_size()) == (3, 4)
    assert rank_zero_only.rank == 3  # type: ignore[attr-defined]


def test_teardown_removes_the_run_variables_set_after_creation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_RANK", "0")  # there before: kept
    env = LocalEnvironment()
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29512", "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)  # what a launch writes
    env.teardown()
    assert "MASTER_ADDR" not in os.environ
    assert "MASTER_PORT" not in os.environ
    assert "WORLD_SIZE" not in os.environ
    assert os.environ["NODE_RANK"] == "0"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LOCAL_RANK", "abc", r"LocalEnvironment: LOCAL_RANK='abc' is not an integer"),
        ("MASTER_PORT", "x", r"LocalEnvironment: MASTER_PORT='x' is not an integer"),
        ("MASTER_PORT", "99999", r"LocalEnvironment: MASTER_PORT='99999' is not a port number"),
        ("NODE_RANK", "first", r"LocalEnvironment: NODE_RANK='first' is not an integer"),
    ],
)
def test_malformed_variable_is_named_at_construction(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(EnvironmentVariableError, match=message):
        LocalEnvironment()
