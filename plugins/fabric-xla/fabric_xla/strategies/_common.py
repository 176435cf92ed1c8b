"""What every XLA strategy does alike: check torch_xla, adopt the XLA precision and file IO, refuse other devices."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, ExitStack
from typing import TYPE_CHECKING, Any

import torch
from fabric_core.checkpoint_io import CheckpointIO
from fabric_core.utilities.init import EmptyInit

from fabric_xla._imports import check_torch_xla
from fabric_xla.checkpoint_io import XLACheckpointIO
from fabric_xla.precision import to_xla_precision

if TYPE_CHECKING:
    from fabric_core.strategies.strategy import Strategy
    from torch.nn import Module


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


def host_module_init_context(strategy: Strategy, empty_init: bool | None) -> AbstractContextManager:
    """``fabric.init_module()`` on XLA: the precision's dtype, but modules are made on the host.

    ``fabric.setup`` moves them to the device, as torch_xla's own examples do. Made on the
    XLA device, their random initial weights would come from XLA's generator, which
    ``seed_everything`` does not seed: every seed would give the same weights, and none the
    weights the same seed gives on the CPU or a GPU.
    """
    stack = ExitStack()
    if empty_init:
        stack.enter_context(EmptyInit())
    stack.enter_context(strategy.precision.module_init_context())
    return stack


def move_module(module: Module, device: torch.device) -> None:
    """``module.to(device)``, keeping its parameter objects (their contents are swapped in).

    A plain ``.to()`` from the CPU to an XLA device makes new parameter objects, so an
    optimizer made before ``fabric.setup(model, optimizer)`` would keep updating the old CPU
    ones and the model would never learn. Swapping (``torch.utils.swap_tensors``, what
    ``torch.__future__.set_swap_module_params_on_conversion`` turns on) keeps them.
    """
    swapping = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(True)
    try:
        module.to(device)
    finally:
        torch.__future__.set_swap_module_params_on_conversion(swapping)


def parallel_loader(batches: Iterable[Any], device: torch.device) -> Iterable[Any]:
    """``batches`` through torch_xla's parallel loader (``MpDeviceLoader``) onto ``device``.

    Background threads draw the next batches and copy them to the device while the current
    step runs, and the loader ends the XLA graph at each batch, as in every torch_xla training
    loop. fabric-core's ``FabricDataLoader`` still owns the iteration (epochs, the distributed
    sampler, the data position that ``fabric.save`` keeps): this only replaces how its batches
    reach the device.
    """
    import torch_xla.distributed.parallel_loader as pl

    loader: Iterable[Any] = pl.MpDeviceLoader(batches, device)
    return loader
