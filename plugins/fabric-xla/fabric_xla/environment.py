"""The cluster environment of XLA runs: ranks and world size as torch_xla's runtime reports them.

XLA's launcher (``torch_xla.launch``) starts the processes and PJRT assigns their ordinals,
so Fabric reads them here and never sets them. Ask only from a launched process: the
runtime starts on first use, and a started runtime can no longer launch processes.
"""

from __future__ import annotations

from fabric_core.environments.cluster_environment import ClusterEnvironment
from fabric_core.log import get_logger


class XLAEnvironment(ClusterEnvironment):
    """Lightning's ``XLAEnvironment``: the XLA runtime decides the ranks; the XLA strategies use it.

    It takes no part in automatic detection (an XLA strategy brings it), so CPU or GPU runs
    on a TPU machine keep their own environment.
    """

    @property
    def creates_processes_externally(self) -> bool:
        return False

    @property
    def main_address(self) -> str:
        raise NotImplementedError(
            "XLAEnvironment has no main address: XLA's runtime connects the processes itself, without "
            "torch.distributed's rendezvous."
        )

    @property
    def main_port(self) -> int:
        raise NotImplementedError(
            "XLAEnvironment has no main port: XLA's runtime connects the processes itself, without "
            "torch.distributed's rendezvous."
        )

    @classmethod
    def detect(cls) -> bool:
        from fabric_xla.accelerator import XLAAccelerator

        return XLAAccelerator.is_available()

    def world_size(self) -> int:
        import torch_xla.runtime as xr

        return int(xr.world_size())

    def set_world_size(self, size: int) -> None:
        get_logger(__name__).debug("the XLA runtime decides the world size; set_world_size ignored", requested=size)

    def global_rank(self) -> int:
        import torch_xla.runtime as xr

        return int(xr.global_ordinal())

    def set_global_rank(self, rank: int) -> None:
        get_logger(__name__).debug("the XLA runtime decides the global rank; set_global_rank ignored", requested=rank)

    def local_rank(self) -> int:
        import torch_xla.runtime as xr

        return int(xr.local_ordinal())

    def node_rank(self) -> int:
        import torch_xla.runtime as xr

        return int(xr.host_index())
