"""Cluster environments: where a process learns its rank, world size and main address."""

from fabric_core.environments.cluster_environment import ClusterEnvironment
from fabric_core.environments.local import LocalEnvironment

__all__ = ["ClusterEnvironment", "LocalEnvironment"]
