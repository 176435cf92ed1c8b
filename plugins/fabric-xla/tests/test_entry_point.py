"""The entry point: what it registers, what it imports, and the Lightning names that resolve to it.

Discovery imports the entry-point module in every process; it must stay free of torch_xla,
and so must ``import fabric_core`` and a run that does not select an XLA device.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fabric_core.discovery import lookup
from fabric_core.testing import check_entry_point, check_import_is_light

#: "auto" asked fabric_xla.accelerator, which answered without importing torch_xla
AUTO_IS_THE_CPU = """
assert fabric.accelerator.name == "cpu", fabric.accelerator
"""


def test_fabric_core_and_discovery_never_import_torch_xla(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PJRT_DEVICE", raising=False)  # accelerator="auto", no PJRT_DEVICE and no TPU: the CPU
    check_import_is_light(
        tmp_path, "fabric_xla", "fabric-xla", heavy=["torch_xla"], arguments="devices=1", then=AUTO_IS_THE_CPU
    )


def test_entry_point_registers_the_accelerator_and_strategies() -> None:
    record = check_entry_point(
        "fabric-xla", {"accelerators": {"tpu", "xla"}, "strategies": {"single_xla", "xla", "xla_fsdp"}}
    )
    assert record.entry_point == "xla"
    assert lookup("accelerator", "tpu").priority == 30  # ahead of cuda: "auto" prefers a TPU, as Lightning
    assert lookup("accelerator", "xla").factory == lookup("accelerator", "tpu").factory
    for name in ("single_xla", "xla", "xla_fsdp"):
        assert lookup("strategy", name).distribution == "fabric-xla"
        assert set(lookup("strategy", name).accelerators) == {"tpu", "xla"}


def test_lightning_names_resolve_to_the_addon_classes() -> None:
    import fabric_core.accelerators
    import fabric_core.plugins
    import fabric_core.plugins.environments
    import fabric_core.plugins.io
    import fabric_core.strategies

    from fabric_xla import accelerator, checkpoint_io, environment, precision, strategies

    assert fabric_core.accelerators.XLAAccelerator is accelerator.XLAAccelerator
    assert fabric_core.strategies.XLAStrategy is strategies.XLAStrategy
    assert fabric_core.strategies.XLAFSDPStrategy is strategies.XLAFSDPStrategy
    assert fabric_core.strategies.SingleDeviceXLAStrategy is strategies.SingleDeviceXLAStrategy
    assert fabric_core.plugins.XLAPrecision is precision.XLAPrecision
    assert fabric_core.plugins.XLACheckpointIO is checkpoint_io.XLACheckpointIO
    assert fabric_core.plugins.io.XLACheckpointIO is checkpoint_io.XLACheckpointIO
    assert fabric_core.plugins.environments.XLAEnvironment is environment.XLAEnvironment
