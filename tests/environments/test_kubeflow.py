"""KubeflowEnvironment: a PyTorchJob's variables, used only when passed explicitly."""

from __future__ import annotations

import pytest
import torch

from fabric_core import Fabric
from fabric_core._connector import _select_environment, lookup_registry
from fabric_core.environments import KubeflowEnvironment

PYTORCH_JOB = {"MASTER_ADDR": "pytorchjob-master-0", "MASTER_PORT": "23456", "WORLD_SIZE": "3", "RANK": "2"}


@pytest.fixture
def pytorch_job(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PYTORCH_JOB.items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("pytorch_job")
def test_never_detected() -> None:
    assert KubeflowEnvironment.detect() is False
    assert type(_select_environment(None)).__name__ == "LocalEnvironment"


def test_registered_but_outside_automatic_detection() -> None:
    registry = lookup_registry("environment")
    assert "kubeflow" in registry
    assert registry.get("kubeflow").priority is None
    assert "kubeflow" not in [entry.name for entry in registry.by_priority()]
    assert registry.get("kubeflow").load() is KubeflowEnvironment


@pytest.mark.usefixtures("pytorch_job")
def test_reads_the_pytorch_job() -> None:
    env = KubeflowEnvironment()
    assert env.main_address == "pytorchjob-master-0"
    assert env.main_port == 23456
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (3, 2, 0, 2)
    assert env.local_world_size() == 1
    assert env.creates_processes_externally is True


@pytest.mark.usefixtures("pytorch_job")
def test_set_world_size_and_rank_are_ignored() -> None:
    env = KubeflowEnvironment()
    env.set_world_size(1)
    env.set_global_rank(0)
    assert (env.world_size(), env.global_rank()) == (3, 2)


@pytest.mark.usefixtures("pytorch_job")
def test_validate_settings() -> None:
    KubeflowEnvironment().validate_settings(num_devices=1, num_nodes=3)
    with pytest.raises(ValueError, match=r"devices=1, num_nodes=1\).*WORLD_SIZE=3.*devices=1, num_nodes=3"):
        KubeflowEnvironment().validate_settings(num_devices=1, num_nodes=1)
    with pytest.raises(ValueError, match="one process per pod"):
        KubeflowEnvironment().validate_settings(num_devices=3, num_nodes=1)


@pytest.mark.parametrize("missing", ["MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK"])
def test_missing_variable_is_named_at_construction(
    pytorch_job: None, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    # Checked when the environment is created (it used to fail at first use); a KeyError, as Lightning's.
    monkeypatch.delenv(missing)
    with pytest.raises(KeyError, match=f"{missing}, which is not set.*PyTorchJob"):
        KubeflowEnvironment()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RANK", "abc", "RANK='abc' is not an integer"),
        ("MASTER_PORT", "x", "MASTER_PORT='x' is not an integer"),
        ("MASTER_PORT", "70000", "MASTER_PORT='70000' is not a port number"),
        ("RANK", "3", "RANK=3 is not below WORLD_SIZE=3"),
    ],
)
def test_malformed_variable_is_named_at_construction(
    pytorch_job: None, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=message):
        KubeflowEnvironment()


def test_single_pod_job_trains_through_fabric(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**PYTORCH_JOB, "WORLD_SIZE": "1", "RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    fabric = Fabric(accelerator="cpu", plugins=[KubeflowEnvironment()])
    assert isinstance(fabric.strategy.cluster_environment, KubeflowEnvironment)
    fabric.launch()
    model = torch.nn.Linear(2, 1)
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.1))
    fabric.backward(model(torch.ones(1, 2)).sum())
    optimizer.step()
    assert (fabric.global_rank, fabric.world_size) == (0, 1)
