"""Creating models without paying for initialisation: Lightning's ``_EmptyInit`` and the
meta-device helpers, which scripts such as LitGPT import from this path."""

from __future__ import annotations

from torch.nn import Module

from fabric_core.strategies._empty_init import EmptyInit as _EmptyInit


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


__all__ = ["_EmptyInit", "_has_meta_device_parameters_or_buffers", "_materialize_meta_tensors"]
