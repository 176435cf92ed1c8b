"""Processes started by an MPI launcher (``mpirun``, ``mpiexec``).

Detection follows Lightning Fabric's ``MPIEnvironment``: it is detected only when
``mpi4py`` can be imported and ``MPI.COMM_WORLD`` has more than one process. ``mpi4py`` is
imported lazily, inside :meth:`MPIEnvironment.detect` (and only after
``importlib.util.find_spec`` says it exists), never when fabric-core or its plugin
registrations are imported: importing ``mpi4py.MPI`` initialises MPI.

Where the layout comes from (the decision documented here):

* **mpi4py, when importable** (the source of truth, and the only one detection uses):
  rank and size from ``COMM_WORLD``; one ``allgather`` of host names gives the node rank
  (position of this host among the distinct hosts, in rank order), the local rank and the
  local world size; rank 0 picks a free port and broadcasts it. ``MASTER_ADDR`` /
  ``MASTER_PORT`` override the address (rank 0's host name) and port when set.
* **the launcher's environment variables, otherwise**: an ``MPIEnvironment`` passed
  explicitly (``Fabric(plugins=[MPIEnvironment()])``) in a process started by ``mpirun``
  without ``mpi4py`` reads what the common launchers export:

  ===================  ==========================================================================
  global rank          ``OMPI_COMM_WORLD_RANK``, ``PMIX_RANK``, ``PMI_RANK``, ``MV2_COMM_WORLD_RANK``
  world size           ``OMPI_COMM_WORLD_SIZE``, ``PMI_SIZE``, ``MV2_COMM_WORLD_SIZE``
  local rank           ``OMPI_COMM_WORLD_LOCAL_RANK``, ``MPI_LOCALRANKID``, ``MV2_COMM_WORLD_LOCAL_RANK``,
                       ``PMI_LOCAL_RANK``
  local world size     ``OMPI_COMM_WORLD_LOCAL_SIZE``, ``MPI_LOCALNRANKS``, ``MV2_COMM_WORLD_LOCAL_SIZE``,
                       ``PMI_LOCAL_SIZE``
  ===================  ==========================================================================

  (first set wins, in that order). Without communication the processes cannot agree on
  anything else, so: the node rank is ``rank // local world size`` (mpirun's default
  by-slot mapping puts consecutive ranks on the same node); the main address is
  ``MASTER_ADDR``, or ``127.0.0.1`` when every rank is on this node, else an error asks
  for ``MASTER_ADDR``; the main port is ``MASTER_PORT``, else ``12910``.

  Detection does not use these variables: ``mpirun`` also sets them for programs that do
  not want Fabric to treat them as one job, and Lightning detects MPI through mpi4py only.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import socket
from dataclasses import dataclass
from typing import Any

from fabric_core import _logging
from fabric_core.environments._variables import first_set, read_int
from fabric_core.environments.cluster_environment import ExternallyLaunchedEnvironment
from fabric_core.environments.local import find_free_port

__all__ = ["MPIEnvironment"]

_log = _logging.get_logger(__name__)
_OWNER = "MPIEnvironment"

RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK")
SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
LOCAL_RANK_VARIABLES = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK", "PMI_LOCAL_RANK")
LOCAL_SIZE_VARIABLES = (
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "MPI_LOCALNRANKS",
    "MV2_COMM_WORLD_LOCAL_SIZE",
    "PMI_LOCAL_SIZE",
)
_ALL_VARIABLES = (RANK_VARIABLES, SIZE_VARIABLES, LOCAL_RANK_VARIABLES, LOCAL_SIZE_VARIABLES)
#: ``main_port`` without mpi4py and without ``MASTER_PORT``.
DEFAULT_PORT = 12910

_HINT = (
    "Install mpi4py (pip install mpi4py) so that MPIEnvironment can ask MPI directly, or start the script with an "
    "MPI launcher that exports it (mpirun / mpiexec)."
)


def _comm_world() -> Any | None:
    """mpi4py's ``COMM_WORLD``, or ``None`` when mpi4py is missing or MPI fails to start."""
    try:
        if importlib.util.find_spec("mpi4py") is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        mpi = importlib.import_module("mpi4py.MPI")
    except Exception as err:  # a broken MPI installation must not break detection
        _log.debug("mpi4py is installed but could not be imported", error=f"{type(err).__name__}: {err}")
        return None
    return getattr(mpi, "COMM_WORLD", None)


@dataclass(frozen=True)
class _Layout:
    source: str
    global_rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int
    main_address: str
    main_port: int


class MPIEnvironment(ExternallyLaunchedEnvironment):
    """Ranks and world size from MPI (mpi4py), or from the MPI launcher's variables without it.

    The layout is read once, on first use, by every process at the same point (with
    mpi4py that involves two collectives, so every rank must create and use the
    environment, as Fabric does).
    """

    launcher_name = "MPI"

    def __init__(self) -> None:
        self._layout: _Layout | None = None

    # -- ClusterEnvironment -----------------------------------------------------------------

    @property
    def main_address(self) -> str:
        return self._resolve().main_address

    @property
    def main_port(self) -> int:
        return self._resolve().main_port

    @classmethod
    def detect(cls) -> bool:
        """mpi4py is importable and ``MPI.COMM_WORLD`` holds more than one process."""
        comm = _comm_world()
        if comm is None:
            return False
        try:
            return int(comm.Get_size()) > 1
        except Exception as err:
            _log.debug("MPI.COMM_WORLD.Get_size() failed", error=f"{type(err).__name__}: {err}")
            return False

    def world_size(self) -> int:
        return self._resolve().world_size

    def global_rank(self) -> int:
        return self._resolve().global_rank

    def local_rank(self) -> int:
        return self._resolve().local_rank

    def node_rank(self) -> int:
        return self._resolve().node_rank

    def local_world_size(self) -> int:
        """Processes on this node."""
        return self._resolve().local_world_size

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        """``devices * num_nodes`` must equal the MPI world size."""
        world_size = self.world_size()
        if num_devices * num_nodes != world_size:
            raise ValueError(
                f"Fabric(devices={num_devices}, num_nodes={num_nodes}) asks for {num_devices * num_nodes} processes, "
                f"but MPI started {world_size}. Start one process per device (mpirun -np {num_devices * num_nodes} "
                f"...), or change devices and num_nodes so that devices * num_nodes = {world_size}."
            )

    # -- MPI specifics --------------------------------------------------------------------------

    @property
    def source(self) -> str:
        """Where the layout came from: ``"mpi4py"`` or ``"variables"``."""
        return self._resolve().source

    def _resolve(self) -> _Layout:
        if self._layout is None:
            comm = _comm_world()
            self._layout = self._from_mpi4py(comm) if comm is not None else self._from_variables()
        return self._layout

    @staticmethod
    def _from_mpi4py(comm: Any) -> _Layout:
        rank = int(comm.Get_rank())
        size = int(comm.Get_size())
        hosts: list[str] = list(comm.allgather(socket.gethostname()))
        me = hosts[rank]
        distinct = list(dict.fromkeys(hosts))
        proposed_port = find_free_port() if rank == 0 else None
        port = int(comm.bcast(proposed_port, root=0))
        return _Layout(
            source="mpi4py",
            global_rank=rank,
            world_size=size,
            local_rank=hosts[:rank].count(me),
            local_world_size=hosts.count(me),
            node_rank=distinct.index(me),
            main_address=os.environ.get("MASTER_ADDR") or hosts[0],
            main_port=int(os.environ["MASTER_PORT"]) if os.environ.get("MASTER_PORT") else port,
        )

    @staticmethod
    def _from_variables() -> _Layout:
        rank = read_int(RANK_VARIABLES, owner=_OWNER, hint=_HINT)
        size = read_int(SIZE_VARIABLES, owner=_OWNER, hint=_HINT)
        local_rank = read_int(LOCAL_RANK_VARIABLES, owner=_OWNER, hint=_HINT, default=0 if size == 1 else None)
        local_size = read_int(LOCAL_SIZE_VARIABLES, owner=_OWNER, hint=_HINT, default=1 if size == 1 else None)
        if not 0 <= rank < size or not 0 <= local_rank < local_size <= size:
            read = [found[0] for found in map(first_set, _ALL_VARIABLES) if found is not None]
            raise RuntimeError(
                f"MPIEnvironment read an impossible layout from the environment: rank {rank} of {size}, local rank "
                f"{local_rank} of {local_size} (from {', '.join(read)}). Check what your launcher exports."
            )
        address = os.environ.get("MASTER_ADDR")
        if not address:
            if local_size != size:
                found = first_set(SIZE_VARIABLES)
                raise RuntimeError(
                    f"MPIEnvironment without mpi4py cannot find the main node of a multi-node run "
                    f"({found[0] if found else 'size'}={size}, {local_size} on this node). Install mpi4py, or export "
                    "MASTER_ADDR to every rank (for example `mpirun -x MASTER_ADDR=<first host> ...`)."
                )
            address = "127.0.0.1"
        port = read_int(
            "MASTER_PORT", owner=_OWNER, hint="Set MASTER_PORT to a free port number.", default=DEFAULT_PORT
        )
        return _Layout(
            source="variables",
            global_rank=rank,
            world_size=size,
            local_rank=local_rank,
            local_world_size=local_size,
            node_rank=rank // local_size,
            main_address=address,
            main_port=port,
        )
