"""Choosing one accelerator, strategy, precision and cluster environment for a run.

The inputs are ``Fabric``'s arguments, the ``plugins`` list and the environment
(``FABRIC_*`` variables set by ``fabric run``); the output is a :class:`Selection`.
The rules for ``"auto"`` follow Lightning's: the best available accelerator, one device,
the single-device strategy for one process and ``"ddp"`` for more.
"""

from __future__ import annotations

import inspect
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

from fabric_core._discovery import discover
from fabric_core._lookup import lookup
from fabric_core.accelerators.accelerator import Accelerator
from fabric_core.checkpoint_io import CheckpointIO
from fabric_core.environments.cluster_environment import ClusterEnvironment
from fabric_core.precision.precision import Precision
from fabric_core.registry import Registry
from fabric_core.strategies.strategy import Strategy

#: Lightning's short precision spellings and what they mean.
PRECISION_ALIASES: dict[str, str] = {
    "32": "32-true",
    "16": "16-mixed",
    "bf16": "bf16-mixed",
    "64": "64-true",
}

_COMPONENT_TYPES = (Strategy, Precision, ClusterEnvironment, CheckpointIO, Accelerator)


@dataclass
class Selection:
    """What the connector chose."""

    accelerator: Accelerator
    strategy: Strategy
    precision: Precision
    environment: ClusterEnvironment
    devices: list[int]
    num_nodes: int
    hook_plugins: list[object] = field(default_factory=list)


def _from_env(argument: str, value: Any, default: Any) -> Any:
    """Lightning's rule for ``FABRIC_<ARG>`` (set by ``fabric run``): code and CLI must agree."""
    variable = f"FABRIC_{argument.upper()}"
    env_value = os.environ.get(variable)
    if env_value is None:
        return value
    if value != default and _spelling(argument, value) != _spelling(argument, env_value):
        flag = "--" + argument.replace("_", "-")
        raise ValueError(
            f"Your code has Fabric({argument}={value!r}), which conflicts with {flag}={env_value} set through "
            f"the command line ({variable}). Remove one of the two."
        )
    return env_value


def _spelling(argument: str, value: Any) -> str:
    """One spelling per meaning, so ``precision=16`` agrees with ``--precision 16-mixed``
    and ``devices=[0, 1]`` with ``--devices 0,1``."""
    if argument == "precision" and isinstance(value, (int, str)) and not isinstance(value, bool):
        return PRECISION_ALIASES.get(str(value), str(value))
    if argument == "devices" and isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return str(value).replace(" ", "")


def normalize_precision(precision: Any) -> str:
    """``16`` → ``"16-mixed"``, ``"bf16"`` → ``"bf16-mixed"``, ... (strings pass through)."""
    if isinstance(precision, bool) or not isinstance(precision, (int, str)):
        raise TypeError(
            f"precision={precision!r}: expected a string such as '32-true' or 'bf16-mixed' (or 16, 32, 64)."
        )
    text = str(precision)
    return PRECISION_ALIASES.get(text, text)


def _split_plugins(plugins: Any) -> tuple[dict[type, Any], list[object]]:
    """Component instances by base type, and the remaining objects implementing hooks."""
    if plugins is None:
        return {}, []
    items = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    components: dict[type, Any] = {}
    hook_plugins: list[object] = []
    for item in items:
        if isinstance(item, type):
            raise TypeError(
                f"Fabric(plugins=[{item.__name__}]) got a class; pass an instance, for example {item.__name__}()."
            )
        if isinstance(item, (str, int, float, bool)) or item is None:
            raise TypeError(
                f"Fabric(plugins=[{item!r}]): plugins must be objects (a Precision, ClusterEnvironment, "
                "CheckpointIO or Strategy instance, or an object implementing fabric_* hooks). Select "
                "components by name with the accelerator=, strategy= and precision= arguments instead."
            )
        base = next((kind for kind in _COMPONENT_TYPES if isinstance(item, kind)), None)
        if base is None:
            # The same test as the plugin manager's: a non-callable ``fabric_*`` attribute is no hook.
            if not any(
                name.startswith("fabric_") and inspect.isroutine(getattr(item, name, None)) for name in dir(item)
            ):
                raise TypeError(
                    f"Fabric(plugins=[...]) got {type(item).__name__!r}, which is neither a component (Precision, "
                    "ClusterEnvironment, CheckpointIO, Strategy, Accelerator) nor implements any fabric_* hook."
                )
            hook_plugins.append(item)
            continue
        if base in components:
            raise ValueError(
                f"Fabric(plugins=[...]) got two {base.__name__} objects: {components[base]!r} and {item!r}. "
                "Pass only one."
            )
        components[base] = item
    return components, hook_plugins


def _select_accelerator(flag: Any) -> Accelerator:
    if isinstance(flag, Accelerator):
        return flag
    if not isinstance(flag, str):
        raise TypeError(f"accelerator={flag!r}: expected a name such as 'cpu', 'cuda' or 'auto', or an Accelerator.")
    name = flag.lower()
    if name == "auto":
        for entry in lookup_registry("accelerator").by_priority():
            if entry.load().is_available():
                accelerator: Accelerator = entry.create()
                return accelerator
        return lookup("accelerator", "cpu").create()  # type: ignore[no-any-return]
    registry = lookup_registry("accelerator")
    if name in registry.aliases:  # "gpu": the first available of "cuda" and "mps"
        for entry in registry.alias_targets(name):
            if entry.load().is_available():
                return entry.create()  # type: ignore[no-any-return]
        targets = [target.upper() for target in registry.aliases[name].targets]
        missing = f"neither {' nor '.join(targets)} is" if len(targets) > 1 else f"{targets[0]} is not"
        raise RuntimeError(
            f"accelerator={flag!r} was requested, but {missing} available here. Use accelerator='cpu' or 'auto'."
        )
    entry = lookup("accelerator", name)
    accelerator = entry.create()
    if not accelerator.is_available():
        raise RuntimeError(
            f"accelerator={flag!r} was requested, but it is not available on this machine. Use "
            "accelerator='auto' to pick what is available, or 'cpu'."
        )
    return accelerator


def lookup_registry(kind: str) -> Registry:
    """The registry of ``kind`` from this process's discovery."""
    return discover().registry(kind)


def _select_environment(given: ClusterEnvironment | None) -> ClusterEnvironment:
    if given is not None:
        return given
    for entry in lookup_registry("environment").by_priority():
        if entry.load().detect():
            environment: ClusterEnvironment = entry.create()
            return environment
    return lookup("environment", "local").create()  # type: ignore[no-any-return]


def _select_precision(flag: Any, given: Precision | None) -> Precision:
    if given is not None:
        if flag is not None:
            raise ValueError(
                f"Fabric(precision={flag!r}) and a {type(given).__name__} in plugins=[...] both set the precision. "
                "Pass only one of them."
            )
        return given
    if isinstance(flag, Precision):
        return flag
    name = normalize_precision("32-true" if flag is None else flag)
    return lookup("precision", name).create()  # type: ignore[no-any-return]


def _parse_num_nodes(num_nodes: Any) -> int:
    if isinstance(num_nodes, str) and num_nodes.strip().isdigit():
        num_nodes = int(num_nodes)
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
        raise ValueError(f"num_nodes={num_nodes!r} is not valid: expected an int of 1 or more.")
    return num_nodes


def select(
    accelerator: Any = "auto",
    strategy: Any = "auto",
    devices: Any = "auto",
    num_nodes: Any = 1,
    precision: Any = None,
    plugins: Any = None,
) -> Selection:
    """Turn ``Fabric``'s arguments into one set of components, or raise one clear error."""
    accelerator = _from_env("accelerator", accelerator, "auto")
    strategy = _from_env("strategy", strategy, "auto")
    devices = _from_env("devices", devices, "auto")
    num_nodes = _from_env("num_nodes", num_nodes, 1)
    precision = _from_env("precision", precision, None)

    components, hook_plugins = _split_plugins(plugins)
    if Strategy in components:
        if strategy not in ("auto", None):
            raise ValueError(
                f"Fabric(strategy={strategy!r}) and a {type(components[Strategy]).__name__} in plugins=[...] both "
                "set the strategy. Pass only one of them."
            )
        strategy = components[Strategy]
    if Accelerator in components:
        if accelerator not in ("auto", None):
            raise ValueError(
                f"Fabric(accelerator={accelerator!r}) and an accelerator in plugins=[...] both set the "
                "accelerator. Pass only one of them."
            )
        accelerator = components[Accelerator]
    if isinstance(strategy, Strategy) and strategy.accelerator is not None and accelerator in ("auto", None):
        accelerator = strategy.accelerator

    selected_accelerator = _select_accelerator("auto" if accelerator is None else accelerator)
    environment = _select_environment(components.get(ClusterEnvironment))
    if devices in ("auto", None) and environment.creates_processes_externally:
        # Under torchrun (or SLURM, ...) "auto" means as many devices as processes per node.
        local_world_size = getattr(environment, "local_world_size", None)
        devices = local_world_size() if callable(local_world_size) else devices
    device_indices = selected_accelerator.parse_devices("auto" if devices is None else devices)
    nodes = _parse_num_nodes(num_nodes)
    selected_precision = _select_precision(precision, components.get(Precision))
    environment.validate_settings(len(device_indices), nodes)

    if isinstance(strategy, Strategy):
        selected_strategy = strategy
    elif isinstance(strategy, str):
        name = strategy.lower()
        context = ""
        if name == "auto":
            processes = len(device_indices) * nodes
            single, multiple = selected_accelerator.auto_strategies  # ("single_xla", "xla") on XLA devices
            name = single if processes == 1 else multiple
            context = f" (chosen by strategy='auto' for {len(device_indices)} device(s) on {nodes} node(s))"
        entry = lookup("strategy", name, context=context)
        fallback = entry.fallback_on(selected_accelerator.name)
        if fallback is not None:
            # Registry data: "dp" runs on cuda only and falls back to "ddp" elsewhere, as in Lightning.
            warnings.warn(
                f"strategy={name!r} is not supported on accelerator={selected_accelerator.name!r}; using "
                f"strategy={fallback!r}.",
                UserWarning,
                stacklevel=3,
            )
            entry = lookup("strategy", fallback, context=f" (the fallback of strategy={name!r})")
        selected_strategy = entry.create()
    else:
        raise TypeError(f"strategy={strategy!r}: expected a name such as 'auto' or 'ddp', or a Strategy instance.")

    selected_strategy.connect(
        accelerator=selected_accelerator,
        precision=selected_precision,
        cluster_environment=environment,
        parallel_devices=selected_accelerator.get_parallel_devices(device_indices),
        num_nodes=nodes,
        checkpoint_io=components.get(CheckpointIO),
    )
    selected_strategy.validate()
    selected_strategy.configure_launcher()
    assert selected_strategy.accelerator is not None
    selected_strategy.precision.setup(selected_strategy.root_device.type)
    return Selection(
        accelerator=selected_strategy.accelerator,
        strategy=selected_strategy,
        precision=selected_strategy.precision,
        environment=environment,
        devices=device_indices,
        num_nodes=nodes,
        hook_plugins=hook_plugins,
    )
