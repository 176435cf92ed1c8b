"""Cluster-environment tests start from an environment with no scheduler variables at all.

The machine running the suite may itself be a SLURM job or run under torchrun; every
variable a cluster environment reads is removed first (and restored afterwards by
``monkeypatch``), so a test sees exactly the variables it sets.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CLUSTER_PREFIXES = (
    "SLURM_",
    "SBATCH_",
    "SALLOC_",
    "SRUN_",
    "LSB_",
    "LSF_",
    "JSM_",
    "OMPI_",
    "PMI_",
    "PMIX_",
    "MV2_",
    "MPI_LOCAL",
    "TORCHELASTIC_",
    "FAKE_MPI_",
    "ACME_",
)
CLUSTER_NAMES = (
    "RANK",
    "LOCAL_RANK",
    "GROUP_RANK",
    "ROLE_RANK",
    "NODE_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)
#: discovery switches the suite keeps (conftest at the top turns autoload off)
KEEP = ("FABRIC_DISABLE_PLUGIN_AUTOLOAD",)


def cluster_variables() -> list[str]:
    """Names in ``os.environ`` that some cluster environment (or a FABRIC_* override) reads."""
    return [
        name
        for name in os.environ
        if name in CLUSTER_NAMES
        or name.startswith(CLUSTER_PREFIXES)
        or (name.startswith("FABRIC_") and name not in KEEP)
    ]


@pytest.fixture(autouse=True)
def clean_cluster_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in cluster_variables():
        monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def restore_requeue_signal() -> Iterator[None]:
    """``SLURMEnvironment()`` requeues on SIGUSR1 by default (Lightning's default): put back
    the handler of the test process after each test."""
    before = signal.getsignal(signal.SIGUSR1)
    yield
    signal.signal(signal.SIGUSR1, before)


@pytest.fixture
def slurm_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A one-node, four-task SLURM batch job as seen by task 0; tests override single variables."""
    variables = {
        "SLURM_JOB_ID": "123456",
        "SLURM_JOB_NAME": "train",
        "SLURM_NTASKS": "4",
        "SLURM_NTASKS_PER_NODE": "4",
        "SLURM_TASKS_PER_NODE": "4",
        "SLURM_NNODES": "1",
        "SLURM_NODELIST": "node[001-003,007],gpu5",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables


TORCHRUN = {
    "TORCHELASTIC_RUN_ID": "none",  # what detection looks at, as in Lightning
    "RANK": "0",
    "GROUP_RANK": "0",
    "LOCAL_RANK": "0",
    "LOCAL_WORLD_SIZE": "1",
    "WORLD_SIZE": "1",
    "MASTER_ADDR": "127.0.0.1",
    "MASTER_PORT": "29500",
}


@pytest.fixture
def torchrun_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in TORCHRUN.items():
        monkeypatch.setenv(name, value)
    return dict(TORCHRUN)


@pytest.fixture
def lsf_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An LSF job whose rank file lists a launch node, then this machine (2 slots) and another (2 slots)."""
    import socket

    rankfile = tmp_path / "rankfile"
    rankfile.write_text(f"batch7\n{socket.gethostname()}\n{socket.gethostname()}\nother-host\nother-host\n")
    variables = {
        "LSB_JOBID": "123456",
        "LSB_DJOB_RANKFILE": str(rankfile),
        "JSM_NAMESPACE_SIZE": "4",
        "JSM_NAMESPACE_RANK": "1",
        "JSM_NAMESPACE_LOCAL_RANK": "1",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return rankfile


FAKE_MPI4PY = '''
"""A stand-in for mpi4py.MPI: COMM_WORLD described by FAKE_MPI_* variables."""
import os

if os.environ.get("FAKE_MPI_BROKEN"):
    raise RuntimeError("libmpi.so: cannot open shared object file")


class _Comm:
    def Get_size(self):
        return int(os.environ.get("FAKE_MPI_SIZE", "1"))

    def Get_rank(self):
        return int(os.environ.get("FAKE_MPI_RANK", "0"))

    def allgather(self, value):
        hosts = os.environ.get("FAKE_MPI_HOSTS")
        return hosts.split(",") if hosts else [value] * self.Get_size()

    def bcast(self, value, root=0):
        # the value root sent: this rank's own on root, FAKE_MPI_BCAST elsewhere
        return value if self.Get_rank() == root else int(os.environ["FAKE_MPI_BCAST"])


COMM_WORLD = _Comm()
'''


@pytest.fixture
def fake_mpi4py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real importable ``mpi4py`` package (a stand-in) first on ``sys.path``."""
    import importlib

    root = tmp_path / "fake_mpi_site"
    package = root / "mpi4py"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""A stand-in for mpi4py."""\n')
    (package / "MPI.py").write_text(FAKE_MPI4PY)
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    yield root
    for name in [name for name in sys.modules if name.split(".")[0] == "mpi4py"]:
        del sys.modules[name]
    importlib.invalidate_caches()
