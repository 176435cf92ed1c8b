"""fabric-xla: XLA devices (TPUs, and the CPU through PJRT) for fabric-core.

This module is the add-on's entry point (``[project.entry-points.fabric_core] xla =
"fabric_xla"``). fabric-core imports it during discovery, in every process, so it imports
only ``fabric_core`` and the standard library: the components are named by
``"module:Class"`` strings and imported when a run selects them, and torch_xla itself is
imported only then (it takes seconds, and it must match the installed torch).

What it registers:

- accelerators ``"tpu"`` (Lightning's name) and ``"xla"`` (the same accelerator under its
  backend's name);
- strategies ``"single_xla"`` (one device, this process), ``"xla"`` (one process per device,
  started by XLA's own launcher) and ``"xla_fsdp"`` (torch_xla's fully sharded data parallel);
- no precision names: the XLA strategies turn ``precision="32-true"``, ``"16-true"`` or
  ``"bf16-true"`` into :class:`~fabric_xla.precision.XLAPrecision`, as Lightning does.
"""

from __future__ import annotations

from fabric_core.hookspecs import hookimpl
from fabric_core.registry import Registry

__version__ = "0.1.0"

_ACCELERATOR = "fabric_xla.accelerator:XLAAccelerator"
#: Ahead of CUDA (20) and MPS (10): on a TPU machine ``accelerator="auto"`` picks the TPU, as in Lightning.
AUTO_PRIORITY = 30

#: Strategy name -> (factory, description).
STRATEGIES: dict[str, tuple[str, str]] = {
    "single_xla": ("fabric_xla.strategies:SingleDeviceXLAStrategy", "one XLA device in this process"),
    "xla": ("fabric_xla.strategies:XLAStrategy", "one process per XLA device, started by torch_xla's launcher"),
    "xla_fsdp": ("fabric_xla.strategies:XLAFSDPStrategy", "torch_xla's fully sharded data parallel (FSDP)"),
}
#: The accelerator names the XLA strategies run on.
ACCELERATORS = ("tpu", "xla")


@hookimpl
def fabric_register_accelerators(registry: Registry) -> None:
    registry.add(
        "tpu",
        _ACCELERATOR,
        description="XLA devices through PJRT: TPUs, or the CPU with PJRT_DEVICE=CPU",
        priority=AUTO_PRIORITY,
    )
    # A second name for the same class rather than an alias, so that choosing it explains
    # precisely why it cannot run (torch_xla missing or built for another torch, no device).
    registry.add("xla", _ACCELERATOR, description="the same as 'tpu'")


@hookimpl
def fabric_register_strategies(registry: Registry) -> None:
    for name, (factory, description) in STRATEGIES.items():
        registry.add(name, factory, description=description, accelerators=ACCELERATORS)


__all__ = ["ACCELERATORS", "AUTO_PRIORITY", "STRATEGIES", "__version__"]
