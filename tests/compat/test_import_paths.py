"""Every public name of Lightning Fabric 2.6, imported the way a Lightning script does after
``sed s/lightning.fabric/fabric_core/``, is there; add-on names resolve to the installed
add-on or say what to install; and importing the namespaces stays lazy.

The name lists are Lightning Fabric's documented API (its API reference pages and the
``__init__`` of each namespace).
"""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest

from fabric_core._lazy import AddonNotInstalledError

#: namespace -> its public names in Lightning Fabric 2.6 that fabric-core provides itself
CORE_NAMES: dict[str, list[str]] = {
    "fabric_core": ["Fabric", "seed_everything", "is_wrapped"],
    "fabric_core.accelerators": [
        "Accelerator",
        "CPUAccelerator",
        "CUDAAccelerator",
        "MPSAccelerator",
        "find_usable_cuda_devices",
        "ACCELERATOR_REGISTRY",
    ],
    "fabric_core.strategies": [
        "Strategy",
        "DDPStrategy",
        "DataParallelStrategy",
        "FSDPStrategy",
        "ParallelStrategy",
        "SingleDeviceStrategy",
        "ModelParallelStrategy",
        "STRATEGY_REGISTRY",
    ],
    "fabric_core.plugins": [
        "ClusterEnvironment",
        "CheckpointIO",
        "TorchCheckpointIO",
        "Precision",
        "DoublePrecision",
        "HalfPrecision",
        "MixedPrecision",
        "FSDPPrecision",
    ],
    "fabric_core.plugins.precision": [
        "Precision",
        "DoublePrecision",
        "HalfPrecision",
        "MixedPrecision",
        "FSDPPrecision",
    ],
    "fabric_core.plugins.environments": [
        "ClusterEnvironment",
        "KubeflowEnvironment",
        "LightningEnvironment",
        "LSFEnvironment",
        "MPIEnvironment",
        "SLURMEnvironment",
        "TorchElasticEnvironment",
    ],
    "fabric_core.plugins.io": ["CheckpointIO", "TorchCheckpointIO"],
    "fabric_core.plugins.collectives": ["Collective", "TorchCollective", "SingleDeviceCollective"],
    "fabric_core.loggers": ["Logger", "CSVLogger"],
    "fabric_core.utilities": [
        "disable_possible_user_warnings",
        "is_shared_filesystem",
        "LightningEnum",
        "measure_flops",
        "move_data_to_device",
        "rank_zero_deprecation",
        "rank_zero_info",
        "rank_zero_only",
        "rank_zero_warn",
        "suggested_max_num_workers",
        "AttributeDict",
        "Throughput",
        "ThroughputMonitor",
    ],
    "fabric_core.utilities.seed": ["seed_everything"],
    "fabric_core.utilities.apply_func": [
        "apply_to_collection",
        "move_data_to_device",
        "convert_to_tensors",
        "convert_tensors_to_scalars",
        "TransferableDataType",
    ],
    "fabric_core.utilities.rank_zero": [
        "rank_zero_only",
        "rank_zero_warn",
        "rank_zero_info",
        "rank_zero_debug",
        "rank_zero_deprecation",
        "rank_prefixed_message",
        "LightningDeprecationWarning",
    ],
    "fabric_core.utilities.distributed": ["is_shared_filesystem", "DistributedSamplerWrapper"],
    "fabric_core.utilities.data": [
        "AttributeDict",
        "suggested_max_num_workers",
        "has_len",
        "sized_len",
        "has_iterable_dataset",
    ],
    "fabric_core.utilities.throughput": ["Throughput", "ThroughputMonitor", "measure_flops", "get_available_flops"],
    "fabric_core.utilities.init": ["_EmptyInit", "_materialize_meta_tensors", "_has_meta_device_parameters_or_buffers"],
    "fabric_core.utilities.load": ["_lazy_load", "_materialize_tensors"],
    "fabric_core.utilities.types": [
        "_PATH",
        "_DEVICE",
        "_MAP_LOCATION_TYPE",
        "ReduceOp",
        "Steppable",
        "Optimizable",
        "LRScheduler",
        "ReduceLROnPlateau",
    ],
    "fabric_core.utilities.enums": ["LightningEnum"],
    "fabric_core.utilities.warnings": ["PossibleUserWarning", "disable_possible_user_warnings"],
    "fabric_core.utilities.cloud_io": ["get_filesystem", "_load"],
}

#: namespace -> Lightning names whose backend is an add-on, with the distribution that provides them
ADDON_NAMES: dict[str, dict[str, str]] = {
    "fabric_core.accelerators": {"XLAAccelerator": "fabric-xla"},
    "fabric_core.strategies": {
        "DeepSpeedStrategy": "fabric-deepspeed",
        "XLAStrategy": "fabric-xla",
        "XLAFSDPStrategy": "fabric-xla",
        "SingleDeviceXLAStrategy": "fabric-xla",
    },
    "fabric_core.plugins": {
        "DeepSpeedPrecision": "fabric-deepspeed",
        "XLAPrecision": "fabric-xla",
        "XLACheckpointIO": "fabric-xla",
        "BitsandbytesPrecision": "fabric-bitsandbytes",
        "TransformerEnginePrecision": "fabric-transformer-engine",
    },
    "fabric_core.plugins.precision": {
        "DeepSpeedPrecision": "fabric-deepspeed",
        "XLAPrecision": "fabric-xla",
        "BitsandbytesPrecision": "fabric-bitsandbytes",
        "TransformerEnginePrecision": "fabric-transformer-engine",
    },
    "fabric_core.plugins.environments": {"XLAEnvironment": "fabric-xla"},
    "fabric_core.plugins.io": {"XLACheckpointIO": "fabric-xla"},
    "fabric_core.loggers": {"TensorBoardLogger": "fabric-tensorboard"},
}

_CORE = [(module, name) for module, names in CORE_NAMES.items() for name in names]
_ADDON = [(module, name, dist) for module, names in ADDON_NAMES.items() for name, dist in names.items()]


def _from_import(module: str, name: str) -> Any:
    """``from <module> import <name>``, as the script would write it."""
    namespace: dict[str, Any] = {}
    exec(f"from {module} import {name}", namespace)
    return namespace[name]


@pytest.mark.parametrize(("module", "name"), _CORE, ids=[f"{m}.{n}" for m, n in _CORE])
def test_lightning_name_imports_from_the_renamed_path(module: str, name: str) -> None:
    value = _from_import(module, name)
    assert value is getattr(importlib.import_module(module), name)
    if not name.startswith("_") and name.isidentifier() and not name.isupper():
        assert name in dir(importlib.import_module(module))


def test_the_names_a_lightning_script_uses_most() -> None:
    from fabric_core import Fabric, is_wrapped, seed_everything
    from fabric_core.environments import LocalEnvironment
    from fabric_core.plugins.collectives import TorchCollective
    from fabric_core.plugins.environments import LightningEnvironment, SLURMEnvironment
    from fabric_core.strategies import DDPStrategy, FSDPStrategy, ModelParallelStrategy
    from fabric_core.strategies.ddp import DDPStrategy as CoreDDP

    assert callable(seed_everything) and callable(is_wrapped) and inspect.isclass(Fabric)
    assert DDPStrategy is CoreDDP
    assert not issubclass(ModelParallelStrategy, FSDPStrategy)  # siblings, as in Lightning
    assert LightningEnvironment is LocalEnvironment
    assert SLURMEnvironment.__module__ == "fabric_core.environments.slurm"
    assert TorchCollective.__module__ == "fabric_core.plugins.collectives.torch_collective"


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    import fabric_core.strategies

    with pytest.raises(AttributeError, match=r"module 'fabric_core.strategies' has no attribute 'DDPStrategyy'"):
        _ = fabric_core.strategies.DDPStrategyy  # type: ignore[attr-defined]
    with pytest.raises(ImportError, match="cannot import name 'SingleTPUStrategy'"):
        _from_import("fabric_core.strategies", "SingleTPUStrategy")


# -- add-on names ---------------------------------------------------------------------------------


def _installed(dist: str) -> bool:
    return importlib.util.find_spec(dist.replace("-", "_")) is not None


@pytest.mark.parametrize(("module", "name", "dist"), _ADDON, ids=[f"{m}.{n}" for m, n, _ in _ADDON])
def test_addon_name_resolves_to_the_addon_or_names_it(module: str, name: str, dist: str) -> None:
    if _installed(dist):
        value = _from_import(module, name)
        assert inspect.isclass(value)
        assert value.__module__.split(".")[0] == dist.replace("-", "_")
        return
    with pytest.raises(AddonNotInstalledError, match=rf"{module}.{name} .* add-on {dist}.*pip install {dist}") as err:
        _from_import(module, name)
    assert isinstance(err.value, ImportError)
    assert name not in dir(importlib.import_module(module))  # listed only when it can be imported


def _forget(monkeypatch: pytest.MonkeyPatch, module: ModuleType, name: str, package: str) -> None:
    """Make ``package`` look uninstalled and drop ``name`` cached on ``module``."""
    if name in vars(module):  # cached by an earlier import; a lookup would resolve (or refuse) it anew
        monkeypatch.delattr(module, name)
    for loaded in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        monkeypatch.delitem(sys.modules, loaded)
    monkeypatch.setitem(sys.modules, package, None)  # type: ignore[arg-type]


def test_deepspeed_strategy_without_the_addon_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import fabric_core.strategies

    _forget(monkeypatch, fabric_core.strategies, "DeepSpeedStrategy", "fabric_deepspeed")
    with pytest.raises(
        ImportError,
        match=r"fabric_core.strategies.DeepSpeedStrategy \(DeepSpeed ZeRO\) is provided by the add-on "
        r"fabric-deepspeed, which is not installed. Install it with: pip install fabric-deepspeed",
    ):
        from fabric_core.strategies import DeepSpeedStrategy  # noqa: F401


def test_tensorboard_logger_without_the_addon_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import fabric_core.loggers

    _forget(monkeypatch, fabric_core.loggers, "TensorBoardLogger", "fabric_tensorboard")
    with pytest.raises(ImportError, match=r"add-on fabric-tensorboard, which is not installed.*pip install"):
        from fabric_core.loggers import TensorBoardLogger  # noqa: F401


def test_xla_names_without_the_addon_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fabric_xla", None)  # type: ignore[arg-type]  # as if not installed
    with pytest.raises(AddonNotInstalledError, match=r"XLAStrategy .* fabric-xla, which is not installed.*pip install"):
        from fabric_core.strategies import XLAStrategy  # noqa: F401


def test_hasattr_on_a_missing_addon_name_raises_the_import_error() -> None:
    # Lightning's names always exist there; here a missing add-on is an ImportError, not a silent False.
    import fabric_core.plugins

    with pytest.raises(ImportError):
        hasattr(fabric_core.plugins, "XLAPrecision")


# -- laziness ---------------------------------------------------------------------------------------

_PROBE = """
import json, sys
import fabric_core
from fabric_core import strategies, accelerators, plugins, loggers, utilities
from fabric_core.plugins import precision, environments, io, collectives
before = sorted(sys.modules)
from fabric_core.strategies import FSDPStrategy
print(json.dumps({"before": before, "after": sorted(sys.modules)}))
"""


def test_namespaces_import_their_names_only_when_used() -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    before, after = set(modules["before"]), set(modules["after"])
    for lazy in (
        "fabric_core.strategies.fsdp",
        "fabric_core.plugins.collectives.torch_collective",
        "fabric_core.utilities.throughput",
        "fabric_core.environments.mpi",
        "fabric_deepspeed",
        "fabric_tensorboard",
    ):
        assert lazy not in before, lazy
    assert "fabric_core.strategies.fsdp" in after
    assert "fabric_deepspeed" not in after
