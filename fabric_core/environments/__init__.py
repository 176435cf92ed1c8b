"""Cluster environments: where a process learns its rank, world size and main address.

Detected in this order (the registry priority, highest first): SLURM, torchrun
(TorchElastic), LSF, MPI, then the local fallback. Kubeflow is never detected; pass
``KubeflowEnvironment()`` in ``Fabric(plugins=[...])``. Importing these modules imports no
scheduler or MPI library: mpi4py is imported by ``MPIEnvironment`` alone, when it detects.
"""

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
