"""Checkpoint files written through ``xm.save``, atomically, and read through fabric-core's safe load.

``xm.save`` finishes the pending XLA computation of the tensors it is given, moves them to
the CPU in one transfer and writes them with ``torch.save``, so a checkpoint written on a TPU
loads anywhere (``torch.load`` sees CPU tensors). Here it writes into fabric-core's hidden
staging file beside the target, which is then renamed over it: a crash mid-save leaves the
old checkpoint or the new one, never half of one. Loading is fabric-core's
(:class:`~fabric_core.checkpoint_io.CheckpointIO`): ``weights_only=True`` unless the caller
opts out, with its errors for damaged or unsafe files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fabric_core.checkpoint_io import CheckpointIO


class XLACheckpointIO(CheckpointIO):
    """Saves with ``xm.save`` (tensors moved off the XLA device first), loads like fabric-core's ``CheckpointIO``.

    Call :meth:`save_checkpoint` on the process that writes (the XLA strategies call it on
    global rank 0).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(
                f"XLACheckpointIO.save_checkpoint(storage_options={storage_options!r}): writing local files takes "
                "no storage options. Drop the argument, or pass a CheckpointIO of your own that uses them."
            )
        import torch_xla.core.xla_model as xm
        from fabric_core.strategies import staging as staging_

        path = Path(path)
        if path.is_dir():
            raise IsADirectoryError(
                f"fabric.save({str(path)!r}): a directory is there; this strategy writes one checkpoint file. "
                "Choose a file path, or remove the directory."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = staging_.begin(path, directory=False)
        try:
            with open(staging.location, "wb") as file:
                # master_only=False: this process is the one that writes (the strategy chose it).
                xm.save(checkpoint, file, master_only=False)
                file.flush()
                os.fsync(file.fileno())
        except BaseException:
            staging.abort()
            raise
        staging.commit()
