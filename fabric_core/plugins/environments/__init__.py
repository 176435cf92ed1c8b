"""Lightning's ``lightning.fabric.plugins.environments``: the cluster environments, lazily.

``LightningEnvironment`` (Lightning's default for processes it launches itself) is
fabric-core's :class:`~fabric_core.environments.local.LocalEnvironment`.
``XLAEnvironment`` comes from the fabric-xla add-on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabric_core._addon_names import addons
from fabric_core._lazy import lazy_attributes

if TYPE_CHECKING:
    from fabric_core.environments.cluster_environment import ClusterEnvironment
    from fabric_core.environments.kubeflow import KubeflowEnvironment
    from fabric_core.environments.local import LocalEnvironment as LightningEnvironment
    from fabric_core.environments.lsf import LSFEnvironment
    from fabric_core.environments.mpi import MPIEnvironment
    from fabric_core.environments.slurm import SLURMEnvironment
    from fabric_core.environments.torchelastic import TorchElasticEnvironment

__all__ = [
    "ClusterEnvironment",
    "KubeflowEnvironment",
    "LSFEnvironment",
    "LightningEnvironment",
    "MPIEnvironment",
    "SLURMEnvironment",
    "TorchElasticEnvironment",
]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "ClusterEnvironment": "fabric_core.environments.cluster_environment:ClusterEnvironment",
        "KubeflowEnvironment": "fabric_core.environments.kubeflow:KubeflowEnvironment",
        "LightningEnvironment": "fabric_core.environments.local:LocalEnvironment",
        "LSFEnvironment": "fabric_core.environments.lsf:LSFEnvironment",
        "MPIEnvironment": "fabric_core.environments.mpi:MPIEnvironment",
        "SLURMEnvironment": "fabric_core.environments.slurm:SLURMEnvironment",
        "TorchElasticEnvironment": "fabric_core.environments.torchelastic:TorchElasticEnvironment",
    },
    addons("XLAEnvironment"),
)
