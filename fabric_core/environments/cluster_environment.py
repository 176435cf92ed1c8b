"""The cluster-environment interface."""

from __future__ import annotations

from abc import ABC, abstractmethod

from fabric_core._logging import get_logger


class ClusterEnvironment(ABC):
    """Tells a process its place in the job: ranks, world size, main address and port.

    Environments registered through ``fabric_register_environments`` with a ``priority``
    take part in detection: the first (highest priority) whose :meth:`detect` is true wins.
    """

    @property
    @abstractmethod
    def creates_processes_externally(self) -> bool:
        """Whether something outside Fabric (torchrun, SLURM, mpirun) starts the processes."""

    @property
    @abstractmethod
    def main_address(self) -> str:
        """The address of the rank-0 process, for the process group rendezvous."""

    @property
    @abstractmethod
    def main_port(self) -> int:
        """The port of the rank-0 process."""

    @classmethod
    @abstractmethod
    def detect(cls) -> bool:
        """Whether this process runs in this environment (from environment variables)."""

    @abstractmethod
    def world_size(self) -> int: ...

    @abstractmethod
    def set_world_size(self, size: int) -> None: ...

    @abstractmethod
    def global_rank(self) -> int: ...

    @abstractmethod
    def set_global_rank(self, rank: int) -> None: ...

    @abstractmethod
    def local_rank(self) -> int: ...

    @abstractmethod
    def node_rank(self) -> int: ...

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        """Raise when the user's ``devices``/``num_nodes`` contradict the environment."""

    def teardown(self) -> None:
        """Undo environment changes made while running."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ExternallyLaunchedEnvironment(ClusterEnvironment):
    """An environment whose launcher (torchrun, SLURM, jsrun, mpirun, a PyTorchJob) starts the
    processes and fixes their ranks: Fabric's requests to set them are ignored."""

    #: who decides the ranks, for the debug message
    launcher_name: str = "the launcher"

    @property
    def creates_processes_externally(self) -> bool:
        return True

    def set_world_size(self, size: int) -> None:
        get_logger(__name__).debug(
            f"{self.launcher_name} decides the world size; set_world_size ignored", requested=size
        )

    def set_global_rank(self, rank: int) -> None:
        get_logger(__name__).debug(
            f"{self.launcher_name} decides the global rank; set_global_rank ignored", requested=rank
        )
