"""FSDP peak memory per rank against the number of shards (CPU, gloo).

For each world size (``--world-sizes``, default 1, 2 and 4 processes) this script starts a
fresh run (``python benchmarks/fsdp_memory.py --worker ...``; ``fabric.launch()`` starts the
other ranks) that trains an MLP of ``--layers`` ``Linear(hidden, hidden)`` layers (default
5 x 4096 x 4096 + bias: 84 M parameters, 336 MB (320 MiB) in float32) with Adam for ``--steps`` steps:

* ``fsdp``: ``Fabric(strategy=FSDPStrategy(auto_wrap_policy={nn.Linear}))``, every Linear its
  own shard unit. With ``--init empty`` (the default) the model is built inside
  ``fabric.init_module(empty_init=True)``: on the meta device, materialized shard by shard in
  ``fabric.setup_module``, so no rank ever holds the whole model. With ``--init full`` it is
  built normally (every rank first holds all of it) and sharded afterwards.
* ``single``: world size 1 without FSDP (``strategy="single_device"``), the plain reference:
  the same model built normally, the same Adam, the same ``fabric.setup_module`` and
  ``fabric.setup_optimizers`` calls.

What is measured, per rank: the growth of the peak resident set size over a baseline taken
after the imports (``torch.distributed.fsdp`` and ``torch.distributed.tensor`` included, which
the setup would otherwise import lazily), ``fabric.launch()`` and the process-group start. The peak (``VmHWM`` in
``/proc/self/status``) is reset at the baseline by writing ``5`` to ``/proc/self/clear_refs``
(Linux), so the figure is the highest RSS reached during model build, setup, optimizer
creation and the training steps, minus the RSS at the baseline. Where the reset is not
allowed, the lifetime peak (``ru_maxrss``) is used and the figure is marked approximate.

A second figure, "setup only", is the peak growth up to the end of ``fabric.setup_module``
(model built and sharded; no optimizer, gradients or activations yet): it shows what
``empty_init`` saves, which the whole-run peak hides as long as the sharded training state
(4 x parameters / N plus the gathered layers) is larger than one full copy of the model.

Each rank sends its figures to rank 0 (``fabric.all_gather``), which prints one JSON line;
the driver collects them and prints, per variant and world size, the median (and largest)
per-rank growth in MiB and the ratio of the median to the world-size-1 reference (``single``
when measured, otherwise ``fsdp`` on 1 process).

What to expect: parameters, gradients and Adam's two moments (4 x 336 MB) are split over the
ranks, but each rank also holds the gathered layer being computed (and its unsharded
gradient until it is reduce-scattered), the prefetched next layer and gloo's buffers, so
the growth falls less than 1/N. 4 processes on 2 cores are slow (a few seconds per step);
the default is 2 steps. Use ``--threads`` to set torch's threads per process (default 1).

Run from the repository root::

    python benchmarks/fsdp_memory.py
    python benchmarks/fsdp_memory.py --init both --world-sizes 1,2,4 --json
    python benchmarks/fsdp_memory.py --hidden 2048 --layers 4 --steps 3

This is a measurement, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
_RESULT = "FSDP_MEMORY_RESULT "
_MB = 1024 * 1024


# -- measuring -------------------------------------------------------------------------------


def _status_kb(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _rss_bytes() -> int:
    rss = _status_kb("VmRSS")
    if rss is not None:
        return rss * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # no /proc: the peak so far


def _reset_peak() -> bool:
    """Reset the kernel's peak RSS (``VmHWM``) to the current RSS; ``False`` where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kb("VmHWM") is not None


def _peak_bytes() -> int:
    hwm = _status_kb("VmHWM")
    if hwm is not None:
        return hwm * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- one run (every rank) ----------------------------------------------------------------------


def _worker(args: argparse.Namespace) -> None:
    import torch
    from torch import nn

    from fabric_core import Fabric
    from fabric_core.strategies.fsdp import FSDPStrategy

    torch.set_num_threads(args.threads)
    if args.mode == "single":
        fabric = Fabric(accelerator="cpu", devices=1, strategy="single_device")
    else:
        fabric = Fabric(accelerator="cpu", devices=args.world_size, strategy=FSDPStrategy(auto_wrap_policy={nn.Linear}))
    fabric.launch()
    # The imports the setup would make lazily belong to the baseline, not to the model.
    import torch.distributed.fsdp
    import torch.distributed.tensor

    fabric.barrier()
    gc.collect()
    baseline = _rss_bytes()
    exact = _reset_peak()
    started = time.perf_counter()

    def make_model() -> nn.Module:
        layers: list[nn.Module] = []
        for _ in range(args.layers):
            layers += [nn.Linear(args.hidden, args.hidden), nn.ReLU()]
        return nn.Sequential(*layers[:-1])

    with fabric.init_module(empty_init=args.init == "empty"):
        model = make_model()
    parameters = sum(p.numel() for p in model.parameters())
    model = fabric.setup_module(model)
    setup_growth = _peak_bytes() - baseline  # the model built and set up (sharded), before any training
    optimizer = fabric.setup_optimizers(torch.optim.Adam(model.parameters(), lr=1e-4))
    generator = torch.Generator().manual_seed(fabric.global_rank)
    x = torch.randn(args.batch, args.hidden, generator=generator)
    y = torch.randn(args.batch, args.hidden, generator=generator)
    for _ in range(args.steps):
        loss = nn.functional.mse_loss(model(x), y)
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
    elapsed = time.perf_counter() - started
    growth = _peak_bytes() - baseline

    figures = fabric.all_gather(
        torch.tensor([float(growth), float(setup_growth), float(baseline)], dtype=torch.float64)
    )
    figures = figures.reshape(-1, 3)
    if fabric.global_rank == 0:
        result = {
            "mode": args.mode,
            "init": args.init,
            "world_size": fabric.world_size,
            "parameters": parameters,
            "param_mb": parameters * 4 / _MB,
            "growth_mb": [float(row[0]) / _MB for row in figures],
            "setup_growth_mb": [float(row[1]) / _MB for row in figures],
            "baseline_mb": [float(row[2]) / _MB for row in figures],
            "exact_peak": exact,
            "seconds": elapsed,
        }
        print(_RESULT + json.dumps(result), flush=True)


# -- driver ------------------------------------------------------------------------------------


@dataclass
class Row:
    variant: str
    world_size: int
    median_mb: float
    max_mb: float
    ratio: float | None
    setup_median_mb: float
    per_rank_mb: list[float]
    param_mb: float
    exact_peak: bool
    seconds: float


def _run(args: argparse.Namespace, mode: str, init: str, world_size: int) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--mode",
        mode,
        "--init",
        init,
        "--world-size",
        str(world_size),
        "--hidden",
        str(args.hidden),
        "--layers",
        str(args.layers),
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--threads",
        str(args.threads),
    ]
    environment = dict(os.environ)
    for variable in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR", "NODE_RANK", "GROUP_RANK"):
        environment.pop(variable, None)
    environment.setdefault("FABRIC_DISABLE_PLUGIN_AUTOLOAD", "1")
    process = subprocess.run(command, cwd=_ROOT, env=environment, capture_output=True, text=True, timeout=args.timeout)
    for line in process.stdout.splitlines():
        if line.startswith(_RESULT):
            return json.loads(line[len(_RESULT) :])  # type: ignore[no-any-return]
    raise RuntimeError(
        f"the run {mode}/{init} on {world_size} process(es) printed no result (exit {process.returncode}):\n"
        f"{process.stdout[-3000:]}\n{process.stderr[-3000:]}"
    )


def _rows(results: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        name = "single" if result["mode"] == "single" else f"fsdp, {result['init']} init"
        by_variant.setdefault(name, []).append(result)
    reference = next((r for r in results if r["mode"] == "single"), None)
    for name, variant in by_variant.items():
        own_reference = reference or next((r for r in variant if r["world_size"] == 1), None)
        reference_mb = statistics.median(own_reference["growth_mb"]) if own_reference else None
        for result in sorted(variant, key=lambda r: r["world_size"]):
            median = statistics.median(result["growth_mb"])
            rows.append(
                Row(
                    variant=name,
                    world_size=result["world_size"],
                    median_mb=median,
                    max_mb=max(result["growth_mb"]),
                    ratio=median / reference_mb if reference_mb else None,
                    setup_median_mb=statistics.median(result["setup_growth_mb"]),
                    per_rank_mb=result["growth_mb"],
                    param_mb=result["param_mb"],
                    exact_peak=result["exact_peak"],
                    seconds=result["seconds"],
                )
            )
    return rows


def _print_table(rows: list[Row], reference: str) -> None:
    print(f"\nPeak RSS growth per rank over the post-launch baseline, MiB (ratio vs world size 1: {reference})")
    print(
        f"{'variant':<18} {'world size':>10} {'median':>7} {'max':>6} {'ratio':>6} {'setup only':>10} {'s':>6}"
        "  per rank"
    )
    for row in rows:
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
        ranks = ", ".join(f"{value:.0f}" for value in row.per_rank_mb)
        mark = "" if row.exact_peak else " (approx.: lifetime peak)"
        print(
            f"{row.variant:<18} {row.world_size:>10} {row.median_mb:>7.0f} {row.max_mb:>6.0f} {ratio:>6} "
            f"{row.setup_median_mb:>10.0f} {row.seconds:>6.1f}  {ranks}{mark}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--world-sizes", default="1,2,4", help="comma-separated process counts (default 1,2,4)")
    parser.add_argument("--init", choices=("empty", "full", "both"), default="empty", help="how the model is built")
    parser.add_argument("--no-single", action="store_true", help="skip the plain single-device reference run")
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    # internal: one measured run
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("fsdp", "single"), default="fsdp", help=argparse.SUPPRESS)
    parser.add_argument("--world-size", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return

    import torch

    world_sizes = [int(value) for value in args.world_sizes.split(",") if value.strip()]
    inits = ["empty", "full"] if args.init == "both" else [args.init]
    print(
        f"{platform.system()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}; "
        f"MLP {args.layers} x Linear({args.hidden}, {args.hidden}), Adam, batch {args.batch}, {args.steps} steps, "
        f"{args.threads} torch thread(s) per process",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    if not args.no_single:
        results.append(_run(args, "single", "full", 1))
        print(f"  single: {results[-1]['growth_mb'][0]:.0f} MiB", flush=True)
    for init in inits:
        for world_size in world_sizes:
            results.append(_run(args, "fsdp", init, world_size))
            growth = ", ".join(f"{value:.0f}" for value in results[-1]["growth_mb"])
            print(f"  fsdp {init} init, {world_size} process(es): {growth} MiB", flush=True)
    rows = _rows(results)
    reference = "single device" if not args.no_single else "fsdp on 1 process"
    megabytes = results[0]["parameters"] * 4 / 1e6
    print(
        f"model: {results[0]['parameters'] / 1e6:.1f} M parameters, {results[0]['param_mb']:.0f} MiB "
        f"({megabytes:.0f} MB) in float32"
    )
    _print_table(rows, reference)
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))


if __name__ == "__main__":
    main()
