"""Per-step overhead of the Fabric training loop over the same raw PyTorch loop.

Trains a small MLP on CPU in one process with a hand-written PyTorch loop and with the
same loop through ``Fabric(accelerator="cpu", devices=1)`` (``fabric.setup``,
``fabric.backward``, ``optimizer.step``). Both loops drive the *same* model and optimizer
objects (the raw loop the user's objects, the Fabric loop the wrappers ``fabric.setup``
returned around them), so that both touch the same memory: two separate copies of the
model differ by up to 1% in step time from memory layout alone.

After a warm-up, rounds of the loops are interleaved (raw, fabric, raw, fabric, ... with
the order rotating every round), so that drift of the machine (frequency, other load)
hits both alike. A third interleaved loop runs the raw step again ("raw-again"): its
difference from "raw" is the noise floor (an A/A comparison) of the run. Every step is
timed on its own; the report gives the median step time of each loop, the ratio of the
medians, the overhead in microseconds per step and the median of the per-round ratios.

Before timing, a short check trains two separate copies of the model, one per loop, on
the same batches and reports the largest parameter difference (0 for ``32-true``): the
two loops do the same work.

With ``--precision bf16-mixed`` the raw loop runs its forward under a hand-written
``torch.autocast("cpu", dtype=torch.bfloat16)`` and casts the output back to float32, as
Fabric's mixed precision does.

It also times ``Fabric(accelerator="cpu")`` in fresh subprocesses, right after the
import, so that the first construction includes plugin discovery.

Budgets (DESIGN.md section 10): per-step overhead under 1% (median); ``Fabric()`` with
first discovery under 50 ms. This is a measurement, not a test: nothing here asserts.

Run from the repository root::

    python benchmarks/overhead.py
    python benchmarks/overhead.py --precision bf16-mixed --json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from _common import (
    STATS_HEADER,
    Batches,
    Comparison,
    LoopStats,
    Step,
    environment,
    fabric_step,
    interleaved_rounds,
    make_batches,
    make_mlp,
    make_optimizer,
    max_parameter_difference,
    ratio_lines,
    raw_step,
    run_json_snippet,
    run_round,
    stats_row,
)
from torch import nn

from fabric_core import Fabric

PRECISIONS = ("32-true", "bf16-mixed")


@dataclass
class OverheadResult:
    precision: str
    hidden: int
    batch: int
    optimizer: str
    steps_per_round: int
    rounds: int
    warmup_steps: int
    threads: int
    raw: LoopStats
    fabric: LoopStats
    raw_again: LoopStats
    ratio_of_medians: float
    overhead_us_per_step: float
    overhead_percent: float
    paired_round_ratio_median: float
    noise_floor_us: float
    max_param_difference: float
    construction: dict[str, float] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)


def equivalence_check(args: argparse.Namespace, base: nn.Module, data: Batches) -> float:
    """Train a copy of ``base`` with each loop on the same batches; the largest parameter difference."""
    raw_model, user_model = copy.deepcopy(base), copy.deepcopy(base)
    raw_optimizer = make_optimizer(raw_model, args.optimizer)
    fabric = Fabric(accelerator="cpu", devices=1, precision=args.precision)
    fabric_model, fabric_optimizer = fabric.setup(user_model, make_optimizer(user_model, args.optimizer))
    scratch: list[float] = []
    run_round(raw_step(raw_model, raw_optimizer, args.precision), data, 20, 0, scratch)
    run_round(fabric_step(fabric, fabric_model, fabric_optimizer), data, 20, 0, scratch)
    return max_parameter_difference(raw_model, user_model)


def measure_overhead(args: argparse.Namespace) -> OverheadResult:
    torch.manual_seed(0)
    features, classes = args.hidden, 10
    model = make_mlp(args.hidden, features, classes)
    data = make_batches(args.batches, args.batch, features, classes)
    difference = equivalence_check(args, model, data)

    optimizer = make_optimizer(model, args.optimizer)
    fabric = Fabric(accelerator="cpu", devices=1, precision=args.precision)
    fabric_model, fabric_optimizer = fabric.setup(model, optimizer)
    loops: dict[str, Step] = {
        "raw": raw_step(model, optimizer, args.precision),
        "fabric": fabric_step(fabric, fabric_model, fabric_optimizer),
        "raw-again": raw_step(model, optimizer, args.precision),
    }

    # Warm-up: allocator, autograd graph caches, optimizer state, branch predictors.
    scratch: list[float] = []
    for step in loops.values():
        run_round(step, data, args.warmup, 0, scratch)

    times = interleaved_rounds(loops, data, args.rounds, args.steps)
    comparison = Comparison.of(times.wall)
    return OverheadResult(
        precision=args.precision,
        hidden=args.hidden,
        batch=args.batch,
        optimizer=args.optimizer,
        steps_per_round=args.steps,
        rounds=args.rounds,
        warmup_steps=args.warmup,
        threads=torch.get_num_threads(),
        raw=comparison.raw,
        fabric=comparison.fabric,
        raw_again=comparison.raw_again,
        ratio_of_medians=comparison.ratio_of_medians,
        overhead_us_per_step=comparison.overhead_us_per_step,
        overhead_percent=comparison.overhead_percent,
        paired_round_ratio_median=times.paired_ratio_median(),
        noise_floor_us=comparison.noise_floor_us,
        max_param_difference=difference,
    )


_CONSTRUCT_SNIPPET = """
import json, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
from fabric_core import Fabric
t2 = time.perf_counter()
Fabric(accelerator="cpu")
t3 = time.perf_counter()
Fabric(accelerator="cpu")
t4 = time.perf_counter()
print(json.dumps({"import_torch": t1 - t0, "import_fabric_core": t2 - t1, "first": t3 - t2, "second": t4 - t3}))
"""


def measure_construction(runs: int) -> dict[str, float]:
    """Median times (ms) of the first ``Fabric(accelerator="cpu")`` in a fresh process, and of a second one."""
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        _, values, _ = run_json_snippet(_CONSTRUCT_SNIPPET)
        for key, milliseconds in values.items():
            samples.setdefault(key, []).append(milliseconds)
    result = {f"{key}_ms": statistics.median(values) for key, values in samples.items()}
    result["runs"] = float(runs)
    return result


def report(result: OverheadResult) -> str:
    comparison = Comparison(
        result.raw,
        result.fabric,
        result.raw_again,
        result.ratio_of_medians,
        result.overhead_us_per_step,
        result.overhead_percent,
        result.noise_floor_us,
    )
    lines = [
        f"fabric-core per-step overhead  (precision={result.precision}, MLP hidden={result.hidden}, "
        f"batch={result.batch}, {result.optimizer}, torch threads={result.threads})",
        f"  {result.rounds} interleaved rounds x {result.steps_per_round} steps per loop, "
        f"{result.warmup_steps} warm-up steps per loop",
        f"  {'loop':<10}{STATS_HEADER}   (µs per step)",
        stats_row("raw", result.raw),
        stats_row("fabric", result.fabric),
        stats_row("raw-again", result.raw_again),
        *ratio_lines(comparison, "< 1%"),
        f"  median of per-round ratios (fabric/raw): {result.paired_round_ratio_median:.4f}",
        f"  same work: max |raw - fabric| parameter difference after 20 steps: {result.max_param_difference:.3g}",
    ]
    if result.construction:
        c = result.construction
        lines += [
            f"Fabric(accelerator='cpu') in a fresh process (median of {int(c['runs'])} runs):",
            f"  first (includes discovery): {c['first_ms']:.2f} ms (budget < 50 ms); second: {c['second_ms']:.2f} ms",
            f"  import torch: {c['import_torch_ms']:.0f} ms; then import fabric_core: "
            f"{c['import_fabric_core_ms']:.1f} ms",
        ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=200, help="timed steps per round and loop (default 200)")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds per loop (default 20)")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up steps per loop (default 200)")
    parser.add_argument("--hidden", type=int, default=256, help="MLP width, also the input size (default 256)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--batches", type=int, default=16, help="distinct in-memory batches cycled (default 16)")
    parser.add_argument("--precision", choices=PRECISIONS, default="32-true")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads value; 0 keeps torch's default (default 1: steadier on a shared machine)",
    )
    parser.add_argument(
        "--construct-runs", type=int, default=7, help="fresh processes timing Fabric(); 0 skips (default 7)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the text report")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1 or args.batches < 1 or args.warmup < 0:
        parser.error("--steps, --rounds and --batches must be at least 1, --warmup at least 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    result = measure_overhead(args)
    if args.construct_runs > 0:
        result.construction = measure_construction(args.construct_runs)
    result.environment = environment()
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        print(report(result))


if __name__ == "__main__":
    main()
