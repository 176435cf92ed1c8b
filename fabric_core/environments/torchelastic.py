"""Processes started by ``torchrun`` (TorchElastic), including ``fabric run``."""

from __future__ import annotations

import os

from fabric_core.environments.cluster_environment import ExternallyLaunchedEnvironment


class TorchElasticEnvironment(ExternallyLaunchedEnvironment):
    """Reads ranks and the rendezvous address from the variables torchrun sets."""

    launcher_name = "torchrun"

    @property
    def main_address(self) -> str:
        return os.environ["MASTER_ADDR"]

    @property
    def main_port(self) -> int:
        return int(os.environ["MASTER_PORT"])

    @classmethod
    def detect(cls) -> bool:
        required = ("RANK", "GROUP_RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
        return all(variable in os.environ for variable in required)

    def world_size(self) -> int:
        return int(os.environ["WORLD_SIZE"])

    def global_rank(self) -> int:
        return int(os.environ["RANK"])

    def local_rank(self) -> int:
        return int(os.environ["LOCAL_RANK"])

    def node_rank(self) -> int:
        return int(os.environ.get("GROUP_RANK", 0))

    def local_world_size(self) -> int:
        return int(os.environ["LOCAL_WORLD_SIZE"])

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        expected = num_devices * num_nodes
        if expected != self.world_size():
            raise ValueError(
                f"Fabric(devices={num_devices}, num_nodes={num_nodes}) asks for {expected} processes, but torchrun "
                f"started WORLD_SIZE={self.world_size()}. Make them agree (fabric run passes --devices and "
                "--num-nodes to both)."
            )
