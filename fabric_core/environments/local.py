"""The default environment: processes started on this machine by Fabric itself.

Lightning calls it ``LightningEnvironment`` (``fabric_core.plugins.environments`` has that
name for it). Like Lightning's, it reads ``MASTER_ADDR``/``MASTER_PORT``, ``LOCAL_RANK``,
``NODE_RANK`` (or ``GROUP_RANK``) when set, and otherwise picks ``127.0.0.1`` and a free
port. The launch of a multi-process run writes ``MASTER_ADDR``, ``MASTER_PORT``,
``WORLD_SIZE``, ... into this process's environment; :meth:`LocalEnvironment.teardown`
removes those that were not there when the environment was created, so a second run in
the same process starts clean.
"""

from __future__ import annotations

import os
import socket

from fabric_core.environments._variables import read_int, read_port
from fabric_core.environments.cluster_environment import ClusterEnvironment

__all__ = ["LocalEnvironment", "find_free_port"]

_OWNER = "LocalEnvironment"
_HINT = "Fabric's launcher sets it for the processes it starts; unset it to let Fabric choose."
#: what a run started by Fabric writes into the environment of the launching process
RUN_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "NODE_RANK", "LOCAL_WORLD_SIZE")


def find_free_port() -> int:
    """A free TCP port on this machine (for the main process to listen on)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalEnvironment(ClusterEnvironment):
    """Single machine, processes launched by Fabric; the fallback when nothing else is detected.

    :raises EnvironmentVariableError: at creation, when ``LOCAL_RANK``, ``NODE_RANK``,
        ``GROUP_RANK`` or ``MASTER_PORT`` is set to something that is not a valid number
        (the message names the variable and its value).
    """

    def __init__(self) -> None:
        self._global_rank = 0
        self._world_size = 1
        self._main_port = -1
        self._absent_at_start = [name for name in RUN_VARIABLES if name not in os.environ]
        for name in ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK"):
            if os.environ.get(name, "").strip():
                read_int(name, owner=_OWNER, hint=_HINT)
        if os.environ.get("MASTER_PORT", "").strip():
            read_port("MASTER_PORT", owner=_OWNER)

    @property
    def creates_processes_externally(self) -> bool:
        # Set when a launcher of ours (or the user) already started this rank.
        return "LOCAL_RANK" in os.environ

    @property
    def main_address(self) -> str:
        return os.environ.get("MASTER_ADDR", "127.0.0.1")

    @property
    def main_port(self) -> int:
        """``MASTER_PORT`` when set, else a free port (chosen once per environment)."""
        if self._main_port == -1:
            if os.environ.get("MASTER_PORT", "").strip():
                self._main_port = read_port("MASTER_PORT", owner=_OWNER)
            else:
                self._main_port = find_free_port()
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
        from fabric_core.utilities.rank_zero import rank_zero_only

        self._global_rank = rank
        rank_zero_only.rank = rank  # type: ignore[attr-defined]

    def local_rank(self) -> int:
        return read_int("LOCAL_RANK", owner=_OWNER, hint=_HINT, default=0)

    def node_rank(self) -> int:
        return read_int(("NODE_RANK", "GROUP_RANK"), owner=_OWNER, hint=_HINT, default=0)

    def teardown(self) -> None:
        """Remove the run variables (``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``, ...) that
        were set after this environment was created; keep those that were there before."""
        for name in self._absent_at_start:
            os.environ.pop(name, None)
        self._main_port = -1
