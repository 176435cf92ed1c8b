"""``fabric doctor`` and ``fabric plugins --requirements``: what a bug report needs, in one place.

The report is built from what this process can see, without starting a run: versions,
devices, distributed backends, the cluster environment Fabric would detect (with the
variables it reads), installed plugins with their status, and the problems found among
them. Nothing here imports an add-on's backend.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata
from typing import Any

from fabric_core.environments._variables import is_launcher_variable

#: besides the launchers' own (:func:`~fabric_core.environments._variables.is_launcher_variable`),
#: variables that decide how a run is laid out (shown by ``fabric doctor`` when set)
_RUN_VARIABLES = ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "PL_GLOBAL_SEED")


def report() -> dict[str, Any]:
    """Everything ``fabric doctor`` prints, as plain data (``--json`` prints it as is)."""
    import torch
    import torch.distributed as dist

    from fabric_core import __version__
    from fabric_core._discovery import discover

    found = discover()
    problems: list[str] = []
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None)
    devices = {
        "cpu_cores": os.cpu_count(),
        "cuda_available": cuda,
        "cuda_devices": [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
        if cuda
        else [],
        "mps_available": bool(mps is not None and mps.is_available()),
    }
    if torch.version.cuda and not cuda:
        problems.append(
            f"torch {torch.__version__} is a CUDA {torch.version.cuda} build, but no CUDA device is usable here "
            "(driver missing, or CUDA_VISIBLE_DEVICES hides them): accelerator='cuda' will fail."
        )
    backends = {
        "available": dist.is_available(),
        "gloo": dist.is_available() and dist.is_gloo_available(),
        "nccl": dist.is_available() and dist.is_nccl_available(),
        "mpi": dist.is_available() and dist.is_mpi_available(),
    }
    environment, environment_problem = _detected_environment(found)
    if environment_problem:
        problems.append(environment_problem)
    variables = {name: value for name, value in sorted(os.environ.items()) if _is_run_variable(name)}
    if "LOCAL_RANK" in variables and environment == "local":
        problems.append(
            f"LOCAL_RANK={variables['LOCAL_RANK']} is set, but no launcher was detected: a plain `python train.py` "
            "with several devices will wait for processes nobody starts. Unset it (a leftover in your shell?)."
        )
    records = [record.as_dict() for record in found.records]
    for record in records:
        if record["status"] in ("failed", "incompatible", "refused"):
            problems.append(f"{record['distribution']} {record['version']} is {record['status']}: {record['reason']}")
    for registry in found.registries.values():
        for name, entries in registry.conflicts.items():
            names = " and ".join(entry.distribution for entry in entries)
            problems.append(
                f"{registry.kind} {name!r} is registered by {names}: selecting it fails until one of them is "
                "blocked (FABRIC_BLOCK_PLUGINS) or uninstalled."
            )
    return {
        "versions": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "fabric-core": __version__,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "pluggy": _installed("pluggy"),
            "numpy": _installed("numpy"),
        },
        "devices": devices,
        "distributed_backends": backends,
        "cluster_environment": environment,
        "variables": variables,
        "plugins": records,
        "problems": problems,
    }


def _is_run_variable(name: str) -> bool:
    return is_launcher_variable(name) or name in _RUN_VARIABLES or name.startswith("FABRIC_")


def _detected_environment(found: Any) -> tuple[str, str | None]:
    """The name of the cluster environment ``Fabric()`` would pick, and the problem detecting it, if any."""
    try:
        for entry in found.registry("environment").by_priority():
            if entry.load().detect():
                entry.create()  # constructing checks the environment's variables
                return entry.name, None
    except Exception as err:  # the report must come out even when the environment is broken
        return "unknown", f"the cluster environment could not be read: {type(err).__name__}: {err}"
    return "local", None


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def render(data: dict[str, Any]) -> str:
    """The report as text, one section a block."""
    lines = ["versions:"]
    lines += [f"  {name}: {value}" for name, value in data["versions"].items()]
    lines.append("devices:")
    lines += [f"  {name}: {value}" for name, value in data["devices"].items()]
    backends = data["distributed_backends"]
    usable = [name for name in ("gloo", "nccl", "mpi") if backends[name]]
    lines.append(f"distributed backends: {', '.join(usable) or 'none'}")
    lines.append(f"cluster environment: {data['cluster_environment']}")
    lines.append("variables:" if data["variables"] else "variables: none of the launch variables is set")
    lines += [f"  {name}={value}" for name, value in data["variables"].items()]
    lines.append("plugins:")
    for record in data["plugins"]:
        reason = f": {record['reason']}" if record["reason"] else ""
        lines.append(f"  {record['distribution']} {record['version']} [{record['status']}]{reason}")
    lines.append("problems:" if data["problems"] else "problems: none found")
    lines += [f"  - {problem}" for problem in data["problems"]]
    return "\n".join(lines)


def requirements() -> list[str]:
    """``name==version`` pins of fabric-core, the add-on distributions found, and what each requires."""
    from fabric_core._discovery import discover

    distributions = ["fabric-core", *sorted({record.distribution for record in discover().records})]
    pins: dict[str, str] = {}
    for distribution in distributions:
        version = _installed(distribution)
        if version is None:
            continue
        pins[_normalized(distribution)] = f"{distribution}=={version}"
        for requirement in metadata.requires(distribution) or []:
            if "extra ==" in requirement:
                continue  # optional extras (test, lint) are not what the run needs
            name = re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0]
            required_version = _installed(name)
            if required_version is not None:
                pins.setdefault(_normalized(name), f"{name}=={required_version}")
    return sorted(pins.values(), key=str.lower)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
