"""What every XLA strategy does alike: check torch_xla, adopt the XLA precision and file IO, refuse other devices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabric_core.checkpoint_io import CheckpointIO

from fabric_xla._imports import check_torch_xla
from fabric_xla.checkpoint_io import XLACheckpointIO
from fabric_xla.precision import to_xla_precision

if TYPE_CHECKING:
    from fabric_core.strategies.strategy import Strategy


def check_available(name: str) -> None:
    """torch_xla installed and built for this torch, or the error that says what to install."""
    check_torch_xla(f"strategy={name!r}")


def adopt_xla_components(strategy: Strategy) -> None:
    """After ``connect``: the precision chosen by name becomes ``XLAPrecision``; files go through ``xm.save``.

    A checkpoint IO the user passed stays (a plain :class:`CheckpointIO` is replaced: it would
    write XLA tensors that load only where torch_xla is installed).
    """
    strategy.precision = to_xla_precision(strategy.precision)
    current = strategy._checkpoint_io
    if current is None or type(current) is CheckpointIO:
        strategy.checkpoint_io = XLACheckpointIO()


def check_accelerator(strategy: Strategy, name: str) -> None:
    """Refuse to run an XLA strategy on another accelerator, naming both."""
    from fabric_xla.accelerator import XLAAccelerator

    accelerator = strategy.accelerator
    if not isinstance(accelerator, XLAAccelerator):
        given = getattr(accelerator, "name", None) or type(accelerator).__name__
        raise ValueError(
            f"strategy={name!r} runs on XLA devices, but accelerator={given!r} was selected. Use "
            f"Fabric(accelerator='tpu', strategy={name!r}) (PJRT_DEVICE=CPU runs XLA on the CPU), or a strategy for "
            f"{given!r} such as 'auto'."
        )
