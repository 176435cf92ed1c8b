"""Lightning's ``lightning.fabric.plugins.io``: checkpoint IO, lazily.

``CheckpointIO`` and ``TorchCheckpointIO`` are both fabric-core's
:class:`~fabric_core.checkpoint_io.CheckpointIO` (``torch.save``/``torch.load``, atomic
saves, ``weights_only=True`` loads by default). ``XLACheckpointIO`` comes from fabric-xla.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabric_core._addon_names import addons
from fabric_core._lazy import lazy_attributes

if TYPE_CHECKING:
    from fabric_core.checkpoint_io import CheckpointIO
    from fabric_core.checkpoint_io import CheckpointIO as TorchCheckpointIO

__all__ = ["CheckpointIO", "TorchCheckpointIO"]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "CheckpointIO": "fabric_core.checkpoint_io:CheckpointIO",
        "TorchCheckpointIO": "fabric_core.checkpoint_io:CheckpointIO",
    },
    addons("XLACheckpointIO"),
)
