"""Cluster environments: where a process learns its rank, world size and main address.

Detected in this order (the registry priority, highest first): SLURM, torchrun
(TorchElastic), LSF, MPI, then the local fallback. Kubeflow is never detected; pass
``KubeflowEnvironment()`` in ``Fabric(plugins=[...])``. Importing these modules imports no
scheduler or MPI library: mpi4py is imported by ``MPIEnvironment`` alone, when it detects.
The names are imported lazily, on first use. Lightning's import path for them is
``fabric_core.plugins.environments`` (where the local environment is also called
``LightningEnvironment``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabric_core._lazy import lazy_attributes

if TYPE_CHECKING:
    from fabric_core.environments.cluster_environment import ClusterEnvironment
    from fabric_core.environments.kubeflow import KubeflowEnvironment
    from fabric_core.environments.local import LocalEnvironment
    from fabric_core.environments.lsf import LSFEnvironment
    from fabric_core.environments.mpi import MPIEnvironment
    from fabric_core.environments.slurm import SLURMEnvironment
    from fabric_core.environments.torchelastic import TorchElasticEnvironment

__all__ = [
    "ClusterEnvironment",
    "KubeflowEnvironment",
    "LSFEnvironment",
    "LocalEnvironment",
    "MPIEnvironment",
    "SLURMEnvironment",
    "TorchElasticEnvironment",
]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "ClusterEnvironment": "fabric_core.environments.cluster_environment:ClusterEnvironment",
        "KubeflowEnvironment": "fabric_core.environments.kubeflow:KubeflowEnvironment",
        "LocalEnvironment": "fabric_core.environments.local:LocalEnvironment",
        "LSFEnvironment": "fabric_core.environments.lsf:LSFEnvironment",
        "MPIEnvironment": "fabric_core.environments.mpi:MPIEnvironment",
        "SLURMEnvironment": "fabric_core.environments.slurm:SLURMEnvironment",
        "TorchElasticEnvironment": "fabric_core.environments.torchelastic:TorchElasticEnvironment",
    },
)
