"""The entry point: what it registers, what it imports, and the Lightning names that resolve to it.

Discovery imports the entry-point module in every process; it must stay free of torch_xla,
and so must ``import fabric_core`` and a run that does not select an XLA device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fabric_core.discovery import discover, lookup

ISOLATION = """
import sys
import fabric_core
assert "torch_xla" not in sys.modules
from fabric_core import Fabric
before = set(sys.modules)
import fabric_xla
added = sorted(set(sys.modules) - before)
assert all(name == "fabric_xla" or name.startswith("fabric_core.") for name in added), added

from fabric_core.discovery import discover
(record,) = discover().records_for("fabric-xla")
assert record.status == "loaded", record
fabric = Fabric(devices=1)  # accelerator="auto": no PJRT_DEVICE and no TPU here, so the CPU
assert fabric.accelerator.name == "cpu", fabric.accelerator
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "torch_xla")
assert not loaded, loaded  # "auto" asked fabric_xla.accelerator, which answered without importing torch_xla
print("ISOLATED")
"""


def test_fabric_core_and_discovery_never_import_torch_xla(python: Callable[..., Any]) -> None:
    result = python(ISOLATION, PJRT_DEVICE="")
    assert result.returncode == 0, result.output
    assert "ISOLATED" in result.output


def test_entry_point_registers_the_accelerator_and_strategies() -> None:
    (record,) = discover().records_for("fabric-xla")
    assert record.status == "loaded", record.reason
    assert record.entry_point == "xla"
    assert set(record.provides["accelerators"]) == {"tpu", "xla"}
    assert set(record.provides["strategies"]) == {"single_xla", "xla", "xla_fsdp"}
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
