"""Creating models without paying for initialisation: :class:`EmptyInit` (Lightning's
``_EmptyInit``, which scripts such as LitGPT import from this path, under both names) and the
meta-device helpers. Strategies of add-ons use :class:`EmptyInit` for ``fabric.init_module(empty_init=True)``."""

from __future__ import annotations

from torch.nn import Module

from fabric_core.strategies._empty_init import EmptyInit

#: Lightning's name
_EmptyInit = EmptyInit


def _has_meta_device_parameters_or_buffers(obj: Module, recurse: bool = True) -> bool:
    """Whether any parameter or buffer of ``obj`` lives on the meta device (has no data yet)."""
    tensors = [*obj.parameters(recurse=recurse), *obj.buffers(recurse=recurse)]
    return any(tensor.is_meta for tensor in tensors)


def _materialize_meta_tensors(module: Module, device: object) -> None:
    """Give every meta-device submodule real (uninitialised) storage on ``device`` and run its
    ``reset_parameters()`` where it has one."""
    for submodule in module.modules():
        if _has_meta_device_parameters_or_buffers(submodule, recurse=False):
            submodule.to_empty(device=device, recurse=False)  # type: ignore[arg-type]
            reset = getattr(submodule, "reset_parameters", None)
            if callable(reset):
                reset()


__all__ = ["EmptyInit", "_EmptyInit", "_has_meta_device_parameters_or_buffers", "_materialize_meta_tensors"]
