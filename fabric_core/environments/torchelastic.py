"""Processes started by ``torchrun`` (TorchElastic), including ``fabric run``.

Behaviour follows Lightning Fabric's ``TorchElasticEnvironment``:

* detected when ``TORCHELASTIC_RUN_ID`` is set (``torch.distributed.is_torchelastic_launched()``:
  torchrun's agent sets it for every worker it starts);
* ranks from ``RANK`` (global), ``LOCAL_RANK``, ``GROUP_RANK`` (node), world size from
  ``WORLD_SIZE``;
* the main address is ``MASTER_ADDR``, or ``127.0.0.1`` when it is missing; the main port
  ``MASTER_PORT``, or ``12910``; a default is written back to the environment (with a
  warning) so every library in the process agrees on it.

A malformed value (``LOCAL_RANK=abc``, ``MASTER_PORT=x``, ``RANK`` not below ``WORLD_SIZE``)
raises an error naming the variable and its value when the environment is created.
"""

from __future__ import annotations

import os

import torch

from fabric_core import _logging
from fabric_core.environments._variables import check_rank, read_int, read_port
from fabric_core.environments.cluster_environment import ExternallyLaunchedEnvironment

__all__ = ["TorchElasticEnvironment"]

_OWNER = "TorchElasticEnvironment"
_HINT = "torchrun sets it for every worker; start the script with `torchrun` or `fabric run`."
#: the main address when ``MASTER_ADDR`` is missing (Lightning's default)
DEFAULT_ADDRESS = "127.0.0.1"
#: the main port when ``MASTER_PORT`` is missing (Lightning's default)
DEFAULT_PORT = 12910
_log = _logging.get_logger(__name__)


class TorchElasticEnvironment(ExternallyLaunchedEnvironment):
    """Reads ranks and the rendezvous address from the variables torchrun sets."""

    launcher_name = "torchrun"

    def __init__(self) -> None:
        self.validate_variables()

    @staticmethod
    def validate_variables() -> None:
        """Check the variables that are set: integers where integers belong, ranks in range.

        :raises EnvironmentVariableError: naming the variable and its value.
        """
        for name in ("RANK", "LOCAL_RANK", "GROUP_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
            if os.environ.get(name, "").strip():
                read_int(name, owner=_OWNER, hint=_HINT, minimum=1 if name.endswith("SIZE") else 0)
        if os.environ.get("MASTER_PORT", "").strip():
            read_port("MASTER_PORT", owner=_OWNER)
        check_rank("RANK", "WORLD_SIZE", owner=_OWNER, hint=_HINT)
        check_rank("LOCAL_RANK", "LOCAL_WORLD_SIZE", owner=_OWNER, hint=_HINT)

    @property
    def main_address(self) -> str:
        """``MASTER_ADDR``; when missing, ``127.0.0.1`` (written to the environment, with a warning)."""
        address = os.environ.get("MASTER_ADDR", "").strip()
        if not address:
            _log.warning("MASTER_ADDR is not set; using the default", default=DEFAULT_ADDRESS)
            os.environ["MASTER_ADDR"] = address = DEFAULT_ADDRESS
        return address

    @property
    def main_port(self) -> int:
        """``MASTER_PORT``; when missing, ``12910`` (written to the environment, with a warning)."""
        if not os.environ.get("MASTER_PORT", "").strip():
            _log.warning("MASTER_PORT is not set; using the default", default=DEFAULT_PORT)
            os.environ["MASTER_PORT"] = str(DEFAULT_PORT)
        return read_port("MASTER_PORT", owner=_OWNER)

    @classmethod
    def detect(cls) -> bool:
        """Whether torchrun started this process (``TORCHELASTIC_RUN_ID`` is set)."""
        return torch.distributed.is_available() and "TORCHELASTIC_RUN_ID" in os.environ

    def world_size(self) -> int:
        return read_int("WORLD_SIZE", owner=_OWNER, hint=_HINT, minimum=1)

    def global_rank(self) -> int:
        return read_int("RANK", owner=_OWNER, hint=_HINT)

    def local_rank(self) -> int:
        return read_int("LOCAL_RANK", owner=_OWNER, hint=_HINT)

    def node_rank(self) -> int:
        return read_int("GROUP_RANK", owner=_OWNER, hint=_HINT, default=0)

    def local_world_size(self) -> int:
        return read_int("LOCAL_WORLD_SIZE", owner=_OWNER, hint=_HINT, minimum=1)

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        expected = num_devices * num_nodes
        if expected != self.world_size():
            raise ValueError(
                f"Fabric(devices={num_devices}, num_nodes={num_nodes}) asks for {expected} processes, but torchrun "
                f"started WORLD_SIZE={self.world_size()}. Make them agree (fabric run passes --devices and "
                "--num-nodes to both)."
            )
