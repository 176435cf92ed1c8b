"""TorchElasticEnvironment: detection from TORCHELASTIC_RUN_ID, Lightning's defaults for the
rendezvous address, and errors that name a malformed variable."""

from __future__ import annotations

import os

import pytest

from fabric_core.environments import TorchElasticEnvironment
from fabric_core.environments._variables import EnvironmentVariableError


def test_detected_from_the_run_id_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not TorchElasticEnvironment.detect()
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-7")
    assert TorchElasticEnvironment.detect()


def test_rank_variables_without_the_run_id_are_not_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    # Our own launcher (and other tools) export RANK/LOCAL_RANK too; only torchrun sets the run id.
    for name, value in {"RANK": "0", "GROUP_RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, value)
    assert not TorchElasticEnvironment.detect()


def test_reads_ranks_and_sizes(torchrun_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"WORLD_SIZE": "8", "RANK": "5", "LOCAL_RANK": "1", "GROUP_RANK": "2"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    env = TorchElasticEnvironment()
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (8, 5, 1, 2)
    assert env.local_world_size() == 2
    assert (env.main_address, env.main_port) == ("127.0.0.1", 29500)


def test_missing_address_and_port_default_and_are_written_back(torchrun_env: dict[str, str]) -> None:
    del os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"]
    env = TorchElasticEnvironment()
    assert env.main_address == "127.0.0.1"
    assert env.main_port == 12910
    assert (os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"]) == ("127.0.0.1", "12910")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("LOCAL_RANK", "abc", r"LOCAL_RANK='abc' is not an integer"),
        ("MASTER_PORT", "x", r"MASTER_PORT='x' is not an integer"),
        ("MASTER_PORT", "0", r"MASTER_PORT='0' is below 1"),
        ("WORLD_SIZE", "0", r"WORLD_SIZE='0' is below 1"),
        ("RANK", "1", r"RANK=1 is not below WORLD_SIZE=1: ranks run from 0 to 0"),
        ("LOCAL_RANK", "-1", r"LOCAL_RANK='-1' is below 0"),
    ],
)
def test_malformed_variable_is_named_at_construction(
    torchrun_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(EnvironmentVariableError, match=message) as caught:
        TorchElasticEnvironment()
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, RuntimeError)


def test_validate_settings_names_both_sides(torchrun_env: dict[str, str]) -> None:
    env = TorchElasticEnvironment()
    env.validate_settings(num_devices=1, num_nodes=1)
    with pytest.raises(ValueError, match=r"devices=2, num_nodes=1\) asks for 2 processes.*WORLD_SIZE=1"):
        env.validate_settings(num_devices=2, num_nodes=1)
