"""Checkpoint save and load through Fabric against plain ``torch.save`` + fsync and ``torch.load``.

Saves a ~300 MB model (float32 MLP) with ``fabric.save(path, {"model": model})`` and with
``torch.save({"model": model.state_dict()}, file)`` followed by ``flush`` and ``os.fsync``
(what a crash-safe plain save needs at least; Fabric also writes to a staging file, renames
it into place and syncs the folder). Loads with ``fabric.load(path, {"model": model})``
(``weights_only=True``, into the live model) against ``torch.load(path, weights_only=True)``
plus ``model.load_state_dict``. The rounds interleave the two (order rotating) so that the
disk's and the machine's drift hit both alike; the report gives the median of each and
their ratio. Budget (issue 11): within 10% (ratio <= 1.10).

The page cache makes loads of a file just written fast; both loads read the same file, so
they compare alike. This is a measurement, not a test: nothing here asserts.

Run from the repository root::

    python benchmarks/checkpoint_io.py            # ~300 MB, 5 rounds, in a temporary folder
    python benchmarks/checkpoint_io.py --megabytes 100 --rounds 3 --folder /scratch --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _common import environment
from torch import nn

from fabric_core import Fabric


def make_model(megabytes: int) -> nn.Module:
    """Linear layers of 2048 x 2048 float32 (16 MiB each) adding up to about ``megabytes``."""
    layers = max(1, round(megabytes * 2**20 / (2048 * 2048 * 4)))
    return nn.Sequential(*(nn.Linear(2048, 2048) for _ in range(layers)))


def torch_save(model: nn.Module, path: Path) -> None:
    with open(path, "wb") as file:
        torch.save({"model": model.state_dict()}, file)
        file.flush()
        os.fsync(file.fileno())


def torch_load(model: nn.Module, path: Path) -> None:
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])


def timed(function: Callable[[], None]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=300, help="model size (default 300)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--folder", default=None, help="where to write (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    args = parser.parse_args()

    fabric = Fabric(accelerator="cpu", devices=1)
    model = fabric.setup_module(make_model(args.megabytes))
    plain = model.module if hasattr(model, "module") else model
    size = sum(p.numel() * p.element_size() for p in plain.parameters()) / 2**20
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        fabric_path, torch_path = Path(folder, "fabric.ckpt"), Path(folder, "torch.ckpt")
        cases = {
            "save": {
                "torch": lambda: torch_save(plain, torch_path),
                "fabric": lambda: fabric.save(fabric_path, {"model": model}),
            },
            "load": {
                "torch": lambda: torch_load(plain, torch_path),
                "fabric": lambda: fabric.load(fabric_path, {"model": model}),
            },
        }
        for kind in cases.values():  # warm-up: allocator, page cache, first-call imports
            for function in kind.values():
                function()
        times: dict[str, dict[str, list[float]]] = {kind: {"torch": [], "fabric": []} for kind in cases}
        for round_ in range(args.rounds):
            for kind, functions in cases.items():
                order = ["torch", "fabric"] if round_ % 2 == 0 else ["fabric", "torch"]
                for name in order:
                    times[kind][name].append(timed(functions[name]))

    medians = {kind: {name: statistics.median(values) for name, values in by.items()} for kind, by in times.items()}
    ratios = {kind: by["fabric"] / by["torch"] for kind, by in medians.items()}
    if args.json:
        print(json.dumps({"environment": environment(), "megabytes": size, "median_s": medians, "ratio": ratios}))
        return
    print(f"checkpoint of {size:.0f} MiB, {args.rounds} interleaved rounds, median seconds")
    print(f"{'':6}{'torch':>10}{'fabric':>10}{'ratio':>8}")
    for kind, by in medians.items():
        print(f"{kind:6}{by['torch']:>10.3f}{by['fabric']:>10.3f}{ratios[kind]:>8.2f}")
    verdict = "within" if max(ratios.values()) <= 1.10 else "OVER"
    print(f"budget: fabric within 10% of torch ({verdict})", file=sys.stderr)


if __name__ == "__main__":
    main()
