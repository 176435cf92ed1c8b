"""Processes started by Kubeflow's training operator (a ``PyTorchJob``).

The operator runs one process per pod and gives each the variables of
``torch.distributed``'s env:// rendezvous: ``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``
and ``RANK``. Those variables alone do not tell a PyTorchJob from any other program that
exports them, so (as in Lightning Fabric) this environment is never detected: pass it
explicitly, ``Fabric(plugins=[KubeflowEnvironment()])``. Each pod counts as a node: the
local rank is always 0 and the node rank is the global rank.

The four variables are checked when the environment is created: a missing one raises
:class:`~fabric_core.environments._variables.MissingEnvironmentVariableError` (a
``KeyError``, as Lightning's ``os.environ[...]`` lookups raise), a malformed one (``RANK=abc``,
``MASTER_PORT=x``, ``RANK`` not below ``WORLD_SIZE``) an ``EnvironmentVariableError`` (a
``ValueError``); both name the variable and its value.
"""

from __future__ import annotations

import os

from fabric_core.environments._variables import MissingEnvironmentVariableError, check_rank, read_int, read_port
from fabric_core.environments.cluster_environment import ExternallyLaunchedEnvironment

__all__ = ["KubeflowEnvironment"]

_OWNER = "KubeflowEnvironment"
_HINT = "The Kubeflow training operator sets it in every pod of a PyTorchJob."


class KubeflowEnvironment(ExternallyLaunchedEnvironment):
    """Rank and world size from a PyTorchJob's ``RANK`` / ``WORLD_SIZE``; one process per pod."""

    launcher_name = "the PyTorchJob"

    def __init__(self) -> None:
        _ = self.main_address
        _ = self.main_port
        self.world_size()
        self.global_rank()
        check_rank("RANK", "WORLD_SIZE", owner=_OWNER, hint=_HINT)

    @property
    def main_address(self) -> str:
        address = os.environ.get("MASTER_ADDR", "").strip()
        if not address:
            raise MissingEnvironmentVariableError(
                f"{_OWNER} needs the environment variable MASTER_ADDR, which is not set. {_HINT}"
            )
        return address

    @property
    def main_port(self) -> int:
        if not os.environ.get("MASTER_PORT", "").strip():
            read_int("MASTER_PORT", owner=_OWNER, hint=_HINT)  # raises, naming the variable
        return read_port("MASTER_PORT", owner=_OWNER)

    @classmethod
    def detect(cls) -> bool:
        """Always ``False``: a PyTorchJob cannot be told apart from its variables; pass it explicitly."""
        return False

    def world_size(self) -> int:
        return read_int("WORLD_SIZE", owner=_OWNER, hint=_HINT, minimum=1)

    def global_rank(self) -> int:
        return read_int("RANK", owner=_OWNER, hint=_HINT)

    def local_rank(self) -> int:
        return 0

    def node_rank(self) -> int:
        return self.global_rank()

    def local_world_size(self) -> int:
        """One process per pod."""
        return 1

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        """One process per pod: ``devices`` must be 1 and ``num_nodes`` the number of pods (``WORLD_SIZE``)."""
        world_size = self.world_size()
        if num_devices != 1 or num_nodes != world_size:
            raise ValueError(
                f"Fabric(devices={num_devices}, num_nodes={num_nodes}) does not match the PyTorchJob: Kubeflow runs "
                f"one process per pod and WORLD_SIZE={world_size} pods. Use Fabric(devices=1, "
                f"num_nodes={world_size}) and give each pod the device(s) it needs."
            )
