"""Lightning Fabric names whose backend is an add-on, and the add-on that provides each.

The public namespaces (``fabric_core.strategies``, ``fabric_core.plugins``, ...) resolve
these lazily: to the add-on's class when it is installed, otherwise to an
:class:`~fabric_core._lazy.AddonNotInstalledError` naming the distribution to install.
"""

from __future__ import annotations

from fabric_core._lazy import AddonName

__all__ = ["ADDON_NAMES", "addons"]


def _deepspeed(target: str) -> AddonName:
    return AddonName(target, "fabric-deepspeed", "DeepSpeed ZeRO")


def _xla(target: str) -> AddonName:
    return AddonName(target, "fabric-xla", "XLA devices such as TPUs")


#: Lightning's public name -> the add-on class it stands for.
ADDON_NAMES: dict[str, AddonName] = {
    "DeepSpeedStrategy": _deepspeed("fabric_deepspeed.strategy:DeepSpeedStrategy"),
    "DeepSpeedPrecision": _deepspeed("fabric_deepspeed.precision:DeepSpeedPrecision"),
    "XLAAccelerator": _xla("fabric_xla.accelerator:XLAAccelerator"),
    "XLAStrategy": _xla("fabric_xla.strategies:XLAStrategy"),
    "XLAFSDPStrategy": _xla("fabric_xla.strategies:XLAFSDPStrategy"),
    "SingleDeviceXLAStrategy": _xla("fabric_xla.strategies:SingleDeviceXLAStrategy"),
    "XLAPrecision": _xla("fabric_xla.precision:XLAPrecision"),
    "XLACheckpointIO": _xla("fabric_xla.checkpoint_io:XLACheckpointIO"),
    "XLAEnvironment": _xla("fabric_xla.environment:XLAEnvironment"),
    "TensorBoardLogger": AddonName("fabric_tensorboard:TensorBoardLogger", "fabric-tensorboard", "TensorBoard logging"),
    "BitsandbytesPrecision": AddonName(
        "fabric_bitsandbytes:BitsandbytesPrecision",
        "fabric-bitsandbytes",
        "bitsandbytes quantization",
        released=False,
    ),
    "TransformerEnginePrecision": AddonName(
        "fabric_transformer_engine:TransformerEnginePrecision",
        "fabric-transformer-engine",
        "NVIDIA Transformer Engine FP8",
        released=False,
    ),
}


def addons(*names: str) -> dict[str, AddonName]:
    """The entries of :data:`ADDON_NAMES` for ``names``."""
    return {name: ADDON_NAMES[name] for name in names}
