"""Lightning Fabric's ``plugins`` namespace: precisions, cluster environments, checkpoint IO
and collectives, under Lightning's names.

The classes themselves live in :mod:`fabric_core.precision`, :mod:`fabric_core.environments`
and :mod:`fabric_core.checkpoint_io`; this package re-exports them lazily so a script written
for ``lightning.fabric.plugins`` runs after renaming its imports. Names whose backend is an
add-on (``DeepSpeedPrecision``, the XLA names, ``BitsandbytesPrecision``,
``TransformerEnginePrecision``) resolve to the installed add-on or raise an
``ImportError`` that says what to install.

(Not to be confused with fabric-core's own plugins, the add-ons found through the
``fabric_core`` entry-point group: see docs/plugins/writing.md.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabric_core._addon_names import addons
from fabric_core._lazy import lazy_attributes

if TYPE_CHECKING:
    from fabric_core.checkpoint_io import CheckpointIO
    from fabric_core.checkpoint_io import CheckpointIO as TorchCheckpointIO
    from fabric_core.environments.cluster_environment import ClusterEnvironment
    from fabric_core.precision.amp import MixedPrecision
    from fabric_core.precision.dtype import DoublePrecision, HalfPrecision
    from fabric_core.precision.fsdp import FSDPPrecision
    from fabric_core.precision.precision import Precision

__all__ = [
    "CheckpointIO",
    "ClusterEnvironment",
    "DoublePrecision",
    "FSDPPrecision",
    "HalfPrecision",
    "MixedPrecision",
    "Precision",
    "TorchCheckpointIO",
]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "ClusterEnvironment": "fabric_core.environments.cluster_environment:ClusterEnvironment",
        "CheckpointIO": "fabric_core.checkpoint_io:CheckpointIO",
        "TorchCheckpointIO": "fabric_core.checkpoint_io:CheckpointIO",
        "Precision": "fabric_core.precision.precision:Precision",
        "DoublePrecision": "fabric_core.precision.dtype:DoublePrecision",
        "HalfPrecision": "fabric_core.precision.dtype:HalfPrecision",
        "MixedPrecision": "fabric_core.precision.amp:MixedPrecision",
        "FSDPPrecision": "fabric_core.precision.fsdp:FSDPPrecision",
        "precision": "fabric_core.plugins.precision",
        "environments": "fabric_core.plugins.environments",
        "io": "fabric_core.plugins.io",
        "collectives": "fabric_core.plugins.collectives",
    },
    addons(
        "DeepSpeedPrecision",
        "XLAPrecision",
        "XLACheckpointIO",
        "BitsandbytesPrecision",
        "TransformerEnginePrecision",
    ),
)
