"""Which environment wins when several schedulers' variables are present (Lightning's order),
and a third-party environment registered through an entry point taking part."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fabric_core import Fabric
from fabric_core._connector import _select_environment, lookup_registry, select
from fabric_core.environments import (
    LocalEnvironment,
    LSFEnvironment,
    MPIEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)
from tests._fake_dist import FakeSite


def test_registered_detection_order() -> None:
    ranked = [(entry.name, entry.priority) for entry in lookup_registry("environment").by_priority()]
    assert [name for name, _ in ranked] == ["slurm", "torchelastic", "lsf", "mpi", "local"]
    assert dict(ranked) == {"slurm": 100, "torchelastic": 90, "lsf": 80, "mpi": 70, "local": 0}
    for entry in lookup_registry("environment"):
        assert entry.distribution == "fabric-core"


def test_nothing_set_means_local() -> None:
    assert type(_select_environment(None)) is LocalEnvironment


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        ({"slurm"}, SLURMEnvironment),
        ({"torchrun"}, TorchElasticEnvironment),
        ({"lsf"}, LSFEnvironment),
        ({"mpi"}, MPIEnvironment),
        ({"slurm", "torchrun"}, SLURMEnvironment),
        ({"slurm", "lsf"}, SLURMEnvironment),
        ({"torchrun", "lsf"}, TorchElasticEnvironment),
        ({"torchrun", "mpi"}, TorchElasticEnvironment),
        ({"lsf", "mpi"}, LSFEnvironment),
        ({"slurm", "torchrun", "lsf", "mpi"}, SLURMEnvironment),
        ({"slurm-interactive"}, LocalEnvironment),
        ({"slurm-interactive", "torchrun"}, TorchElasticEnvironment),  # torchrun inside `srun --pty bash`
        ({"slurm-interactive", "mpi"}, MPIEnvironment),
    ],
)
def test_detection_order(
    present: set[str],
    expected: type,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if "slurm" in present or "slurm-interactive" in present:
        request.getfixturevalue("slurm_env")
    if "slurm-interactive" in present:
        monkeypatch.setenv("SLURM_JOB_NAME", "interactive")
    if "torchrun" in present:
        request.getfixturevalue("torchrun_env")
    if "lsf" in present:
        request.getfixturevalue("lsf_env")
    if "mpi" in present:
        request.getfixturevalue("fake_mpi4py")
        monkeypatch.setenv("FAKE_MPI_SIZE", "2")
    assert type(_select_environment(None)) is expected


def test_an_explicit_environment_beats_detection(slurm_env: dict[str, str], torchrun_env: dict[str, str]) -> None:
    explicit = LocalEnvironment()
    selection = select(accelerator="cpu", devices=1, plugins=[explicit])
    assert selection.environment is explicit


# -- a third-party environment through an entry point ----------------------------------------

ACME_PLUGIN = """
    from fabric_core.hookspecs import hookimpl


    @hookimpl
    def fabric_register_environments(registry):
        registry.add(
            "acme",
            "fake_acme_impl:AcmeEnvironment",
            description="processes started by the ACME scheduler",
            priority=95,
        )
    """

ACME_IMPL = """
    import os

    from fabric_core.environments import ClusterEnvironment


    class AcmeEnvironment(ClusterEnvironment):
        @property
        def creates_processes_externally(self):
            return True

        @property
        def main_address(self):
            return "127.0.0.1"

        @property
        def main_port(self):
            return int(os.environ.get("ACME_PORT", "29400"))

        @classmethod
        def detect(cls):
            return "ACME_JOB" in os.environ

        def world_size(self):
            return int(os.environ["ACME_SIZE"])

        def set_world_size(self, size):
            pass

        def global_rank(self):
            return int(os.environ["ACME_RANK"])

        def set_global_rank(self, rank):
            pass

        def local_rank(self):
            return int(os.environ["ACME_RANK"])

        def node_rank(self):
            return 0

        def local_world_size(self):
            return int(os.environ["ACME_SIZE"])
    """


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_discovery: None) -> Iterator[FakeSite]:
    """fabric-acme installed (a real dist-info on sys.path), autoload on and allowing only it."""
    monkeypatch.delenv("FABRIC_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("FABRIC_BLOCK_PLUGINS", raising=False)
    monkeypatch.setenv("FABRIC_PLUGINS", "fabric-acme")
    with FakeSite(tmp_path / "site", monkeypatch) as site:
        site.add(
            "fabric-acme",
            modules={"fake_acme_plugin": ACME_PLUGIN, "fake_acme_impl": ACME_IMPL},
            entry_points={"acme": "fake_acme_plugin"},
        )
        yield site


@pytest.fixture
def acme_job(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"ACME_JOB": "1", "ACME_SIZE": "1", "ACME_RANK": "0"}.items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("acme")
def test_third_party_environment_is_ranked_by_its_priority() -> None:
    registry = lookup_registry("environment")
    assert registry.get("acme").distribution == "fabric-acme"
    assert [entry.name for entry in registry.by_priority()] == ["slurm", "acme", "torchelastic", "lsf", "mpi", "local"]


@pytest.mark.usefixtures("acme")
def test_third_party_environment_not_detected_without_its_variables() -> None:
    assert type(_select_environment(None)) is LocalEnvironment


@pytest.mark.usefixtures("acme", "acme_job")
def test_third_party_environment_is_detected_and_used_by_fabric() -> None:
    fabric = Fabric(accelerator="cpu")
    environment = fabric.strategy.cluster_environment
    assert type(environment).__name__ == "AcmeEnvironment"
    assert type(environment).__module__ == "fake_acme_impl"


@pytest.mark.usefixtures("acme", "acme_job", "torchrun_env")
def test_third_party_environment_beats_lower_priorities() -> None:
    assert type(_select_environment(None)).__name__ == "AcmeEnvironment"


@pytest.mark.usefixtures("acme", "acme_job")
def test_slurm_beats_the_third_party_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}.items():
        monkeypatch.setenv(name, value)
    assert type(_select_environment(None)) is SLURMEnvironment
