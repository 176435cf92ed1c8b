"""The default environment: processes started on this machine by Fabric itself."""

from __future__ import annotations

import os
import socket

from fabric_core.environments.cluster_environment import ClusterEnvironment


def find_free_port() -> int:
    """A free TCP port on this machine (for the main process to listen on)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalEnvironment(ClusterEnvironment):
    """Single machine, processes launched by Fabric; the fallback when nothing else is detected.

    Reads ``MASTER_ADDR``/``MASTER_PORT``, ``LOCAL_RANK``, ``NODE_RANK`` and ``WORLD_SIZE``
    when they are set (Lightning's ``LightningEnvironment`` does the same), and otherwise
    picks a free port on localhost.
    """

    def __init__(self) -> None:
        self._global_rank = 0
        self._world_size = 1
        self._main_port = -1

    @property
    def creates_processes_externally(self) -> bool:
        # Set when a launcher of ours (or the user) already started this rank.
        return "LOCAL_RANK" in os.environ

    @property
    def main_address(self) -> str:
        return os.environ.get("MASTER_ADDR", "127.0.0.1")

    @property
    def main_port(self) -> int:
        if self._main_port == -1:
            self._main_port = int(os.environ.get("MASTER_PORT", find_free_port()))
        return self._main_port

    @classmethod
    def detect(cls) -> bool:
        return True

    def world_size(self) -> int:
        return self._world_size

    def set_world_size(self, size: int) -> None:
        self._world_size = size

    def global_rank(self) -> int:
        return self._global_rank

    def set_global_rank(self, rank: int) -> None:
        self._global_rank = rank

    def local_rank(self) -> int:
        return int(os.environ.get("LOCAL_RANK", 0))

    def node_rank(self) -> int:
        return int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", 0)))
