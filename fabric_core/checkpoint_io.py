"""Reading and writing checkpoint files: atomic saves, safe loads, clear errors."""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


class CheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be read (corrupt, truncated, or unsafe to unpickle)."""


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    # torch's weights-only errors start with boilerplate; the cause is on a later line.
    detail = [line for line in lines if not line.startswith(("Weights only load failed", "Please file", "Check the"))]
    return (detail or lines or ["no detail"])[0][:200]


class CheckpointIO:
    """Saves with ``torch.save`` and loads with ``torch.load``.

    A save writes to a temporary file in the target's folder, flushes it to disk and
    renames it over the target, so a crash mid-save leaves either the old file or none,
    never half of one. Loads use ``weights_only=True`` unless the caller opts out.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        """Write ``checkpoint`` to ``path`` atomically.

        :param storage_options: Lightning's argument for remote file systems; plain files
            take none, so anything but ``None`` raises ``TypeError`` (as Lightning's
            ``TorchCheckpointIO`` does).
        """
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__}.save_checkpoint(storage_options={storage_options!r}): writing local files "
                "takes no storage options. Drop the argument, or pass a CheckpointIO of your own that uses them."
            )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(descriptor, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def load_checkpoint(
        self, path: str | Path, map_location: Any = "cpu", weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Read the dict saved at ``path``.

        :param weights_only: ``None`` (Lightning's default) means ``True`` here: only
            tensors, containers and plain values are unpickled unless the caller opts out.
        """
        weights_only = True if weights_only is None else weights_only
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"Checkpoint file not found: {str(path)!r}. Check the path.")
        if path.is_dir():
            raise IsADirectoryError(
                f"Checkpoint path {str(path)!r} is a directory, but this strategy reads single-file "
                "checkpoints. Point to the file, or load it with the strategy that wrote it."
            )
        try:
            checkpoint = torch.load(path, map_location=map_location, weights_only=weights_only)
        except pickle.UnpicklingError as err:
            refused = _REFUSED_GLOBAL.search(str(err))
            if weights_only and refused is not None:
                raise CheckpointError(
                    f"Checkpoint {str(path)!r} holds a Python object ({refused.group(1)}) that loading with "
                    "weights_only=True refuses: only tensors, containers and plain values load safely. If you "
                    "trust the file, load it with weights_only=False."
                ) from err
            raise self._unreadable(path, err) from err
        except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError) as err:
            raise self._unreadable(path, err) from err
        if not isinstance(checkpoint, dict):
            raise CheckpointError(
                f"Checkpoint {str(path)!r} holds a {type(checkpoint).__name__}, not a dict of state. "
                "Use fabric.load_raw() for a bare state dict saved with torch.save."
            )
        return checkpoint

    @staticmethod
    def _unreadable(path: Path, err: BaseException) -> CheckpointError:
        size = path.stat().st_size
        return CheckpointError(
            f"Checkpoint {str(path)!r} ({size} bytes) is corrupt or truncated and cannot be read "
            f"({type(err).__name__}: {_first_line(err)}). "
            "Restore it from a backup or load an earlier checkpoint."
        )

    def remove_checkpoint(self, path: str | Path) -> None:
        Path(path).unlink(missing_ok=True)

    def teardown(self) -> None:
        """Release resources (nothing for plain files)."""
