"""MPIEnvironment: detection through mpi4py only, layout from mpi4py or the launcher's variables.

mpi4py is not installed in the test environment. Its absence is tested as is; its
presence with a stand-in package (``fake_mpi4py`` in conftest) that is really imported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

import pytest

from fabric_core._connector import _select_environment
from fabric_core.environments import LocalEnvironment, MPIEnvironment
from fabric_core.environments.mpi import DEFAULT_PORT

needs_no_mpi4py = pytest.mark.skipif(
    "mpi4py" in sys.modules or importlib.util.find_spec("mpi4py") is not None, reason="mpi4py is installed"
)

OPEN_MPI = {
    "OMPI_COMM_WORLD_RANK": "3",
    "OMPI_COMM_WORLD_SIZE": "4",
    "OMPI_COMM_WORLD_LOCAL_RANK": "1",
    "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
}


def _set(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


class _ImportRecorder(MetaPathFinder):
    """Records every attempt to find a module whose top-level name is watched."""

    def __init__(self, watched: str) -> None:
        self.watched = watched
        self.attempts: list[str] = []

    def find_spec(self, fullname: str, path: object = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname.split(".")[0] == self.watched:
            self.attempts.append(fullname)
        return None


@pytest.fixture
def mpi4py_imports() -> Iterator[_ImportRecorder]:
    recorder = _ImportRecorder("mpi4py")
    sys.meta_path.insert(0, recorder)
    yield recorder
    sys.meta_path.remove(recorder)


# -- without mpi4py ----------------------------------------------------------------------------


@needs_no_mpi4py
def test_not_detected_without_mpi4py(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, OPEN_MPI)  # even inside mpirun: detection is mpi4py's alone
    assert MPIEnvironment.detect() is False
    assert "mpi4py" not in sys.modules


@needs_no_mpi4py
@pytest.mark.usefixtures("fresh_discovery")
def test_discovery_never_imports_mpi4py(mpi4py_imports: _ImportRecorder) -> None:
    from fabric_core._discovery import discover

    discover()
    importlib.import_module("fabric_core.environments.mpi")
    assert mpi4py_imports.attempts == []
    # selection runs detection, which looks for mpi4py (and finds none) without failing
    assert isinstance(_select_environment(None), LocalEnvironment)
    assert "mpi4py" in mpi4py_imports.attempts
    assert "mpi4py" not in sys.modules


def test_import_and_discovery_leave_mpi4py_alone_in_a_fresh_interpreter(fake_mpi4py: Path) -> None:
    # with an importable mpi4py on the path, an accidental import would succeed and show
    code = (
        "import json, sys\n"
        "import fabric_core\n"
        "from fabric_core._discovery import discover\n"
        "discover()\n"
        "import fabric_core.environments\n"
        "after_discovery = sorted(m for m in sys.modules if m.startswith('mpi4py'))\n"
        "from fabric_core.environments import MPIEnvironment\n"
        "detected = MPIEnvironment.detect()\n"
        "after_detect = sorted(m for m in sys.modules if m.startswith('mpi4py'))\n"
        "print(json.dumps([after_discovery, detected, after_detect]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(fake_mpi4py), "FAKE_MPI_SIZE": "2"}
    env.pop("FABRIC_DISABLE_PLUGIN_AUTOLOAD", None)  # the real discovery, add-ons included
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    after_discovery, detected, after_detect = json.loads(result.stdout.strip().splitlines()[-1])
    assert after_discovery == []
    assert detected is True
    assert after_detect == ["mpi4py", "mpi4py.MPI"]


@needs_no_mpi4py
def test_open_mpi_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {**OPEN_MPI, "MASTER_ADDR": "10.1.2.3"})
    env = MPIEnvironment()
    assert env.source == "variables"
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (4, 3, 1, 1)
    assert env.local_world_size() == 2
    assert env.main_address == "10.1.2.3"
    assert env.main_port == DEFAULT_PORT
    assert env.creates_processes_externally is True


@needs_no_mpi4py
def test_master_port_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {**OPEN_MPI, "MASTER_ADDR": "10.1.2.3", "MASTER_PORT": "31000"})
    assert MPIEnvironment().main_port == 31000


@needs_no_mpi4py
def test_multi_node_without_master_addr_asks_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, OPEN_MPI)
    with pytest.raises(RuntimeError, match=r"OMPI_COMM_WORLD_SIZE=4, 2 on this node.*mpi4py.*MASTER_ADDR"):
        MPIEnvironment().global_rank()


@needs_no_mpi4py
def test_mpich_hydra_variables_on_one_node(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {"PMI_RANK": "1", "PMI_SIZE": "2", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2"})
    env = MPIEnvironment()
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (2, 1, 1, 0)
    assert env.main_address == "127.0.0.1"  # every rank is on this node


@needs_no_mpi4py
def test_open_mpi_wins_over_pmi(monkeypatch: pytest.MonkeyPatch) -> None:
    # Open MPI under a PMIx-enabled Slurm exports both; the first listed source wins
    _set(monkeypatch, {**OPEN_MPI, "PMI_RANK": "0", "PMI_SIZE": "8", "MASTER_ADDR": "h"})
    env = MPIEnvironment()
    assert (env.global_rank(), env.world_size()) == (3, 4)


@needs_no_mpi4py
def test_single_process_needs_no_local_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {"PMI_RANK": "0", "PMI_SIZE": "1"})
    env = MPIEnvironment()
    assert (env.local_rank(), env.local_world_size(), env.node_rank(), env.main_address) == (0, 1, 0, "127.0.0.1")


@needs_no_mpi4py
def test_without_mpi4py_or_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError, match=r"OMPI_COMM_WORLD_RANK or PMIX_RANK or PMI_RANK.*pip install mpi4py"):
        MPIEnvironment().world_size()


@needs_no_mpi4py
def test_impossible_layout_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {**OPEN_MPI, "OMPI_COMM_WORLD_RANK": "4"})
    with pytest.raises(RuntimeError, match=r"rank 4 of 4.*OMPI_COMM_WORLD_RANK"):
        MPIEnvironment().world_size()


@needs_no_mpi4py
def test_explicit_mpi_environment_through_fabric(monkeypatch: pytest.MonkeyPatch) -> None:
    from fabric_core._connector import select

    _set(monkeypatch, {"PMI_RANK": "0", "PMI_SIZE": "1"})
    selection = select(accelerator="cpu", plugins=[MPIEnvironment()])
    assert isinstance(selection.environment, MPIEnvironment)
    assert selection.devices and len(selection.devices) == 1


def test_validate_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = MPIEnvironment()
    _set(monkeypatch, {"PMI_RANK": "0", "PMI_SIZE": "2", "MPI_LOCALRANKID": "0", "MPI_LOCALNRANKS": "2"})
    env.validate_settings(num_devices=2, num_nodes=1)
    with pytest.raises(ValueError, match=r"devices=1, num_nodes=1\).*MPI started 2.*mpirun -np 1"):
        env.validate_settings(num_devices=1, num_nodes=1)


def test_set_world_size_and_rank_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {"PMI_RANK": "0", "PMI_SIZE": "1"})
    env = MPIEnvironment()
    env.set_world_size(8)
    env.set_global_rank(3)
    assert (env.world_size(), env.global_rank()) == (1, 0)


# -- with an importable mpi4py (stand-in) --------------------------------------------------------


@pytest.mark.parametrize(("size", "expected"), [("1", False), ("2", True), ("16", True)])
def test_detected_when_comm_world_has_several_processes(
    fake_mpi4py: Path, monkeypatch: pytest.MonkeyPatch, size: str, expected: bool
) -> None:
    monkeypatch.setenv("FAKE_MPI_SIZE", size)
    assert MPIEnvironment.detect() is expected


def test_broken_mpi_installation_is_not_detected(fake_mpi4py: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_MPI_SIZE", "2")
    monkeypatch.setenv("FAKE_MPI_BROKEN", "1")
    assert MPIEnvironment.detect() is False


def test_layout_from_mpi4py(fake_mpi4py: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _set(
        monkeypatch,
        {
            "FAKE_MPI_SIZE": "5",
            "FAKE_MPI_RANK": "3",
            "FAKE_MPI_HOSTS": "hostA,hostA,hostB,hostB,hostB",
            "FAKE_MPI_BCAST": "23456",
            # mpi4py is the source of truth: contradicting variables are not read
            "OMPI_COMM_WORLD_RANK": "0",
            "OMPI_COMM_WORLD_SIZE": "1",
        },
    )
    env = MPIEnvironment()
    assert env.source == "mpi4py"
    assert (env.world_size(), env.global_rank(), env.local_rank(), env.node_rank()) == (5, 3, 1, 1)
    assert env.local_world_size() == 3
    assert env.main_address == "hostA"
    assert env.main_port == 23456


def test_rank_zero_picks_the_port(fake_mpi4py: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {"FAKE_MPI_SIZE": "2", "FAKE_MPI_RANK": "0", "FAKE_MPI_HOSTS": "h,h"})
    env = MPIEnvironment()
    assert 0 < env.main_port < 65536
    assert (env.local_rank(), env.local_world_size(), env.node_rank()) == (0, 2, 0)


def test_master_variables_override_mpi4py(fake_mpi4py: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _set(
        monkeypatch,
        {"FAKE_MPI_SIZE": "2", "FAKE_MPI_RANK": "1", "FAKE_MPI_BCAST": "1", "MASTER_ADDR": "a", "MASTER_PORT": "2"},
    )
    env = MPIEnvironment()
    assert (env.main_address, env.main_port) == ("a", 2)


def test_mpi_is_selected_when_detected(fake_mpi4py: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_MPI_SIZE", "2")
    assert isinstance(_select_environment(None), MPIEnvironment)
