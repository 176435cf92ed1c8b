"""DDP step time on 2 CPU processes: Fabric against hand-written ``DistributedDataParallel``.

``Fabric(accelerator="cpu", devices=2, strategy="ddp")`` and ``fabric.launch()`` start the
second process (this script runs again as rank 1) and the gloo process group. Each rank
then builds, on that same process group:

* **raw**: a hand-written ``torch.nn.parallel.DistributedDataParallel`` around one copy of
  a small MLP, with its own SGD optimizer, stepped the way a user writes it by hand
  (``zero_grad``, forward, ``loss.backward()``, ``optimizer.step()``);
* **fabric**: a second copy of the model, with identical initial weights, set up with
  ``fabric.setup(model, optimizer)`` (``DistributedDataParallel`` inside a
  ``FabricModule``) and stepped with ``fabric.backward(loss)`` and the wrapped optimizer;
* **raw-again**: the hand-written loop again, on a third copy with its own hand-written
  ``DistributedDataParallel`` and optimizer.

All loops run in the same processes, on the same in-memory synthetic batches (different
on each rank, as a distributed sampler would give), so that the only difference is
Fabric's layer. A short check first trains every copy for ``--check-steps`` steps and
reports the largest parameter difference between the raw and the Fabric copy (over both
ranks): 0 when both loops do the same work, gradient averaging included.

After a warm-up, rounds of the loops are interleaved (raw, fabric, raw-again, with the
order rotating every round), so that drift of the machine hits all loops alike; every
round starts with a barrier, so that both ranks time the same loop. Rounds are short
(``--steps`` 20): on a shared 2-core machine other processes come and go within seconds
and make the step time bimodal, and short rounds spread that over all loops alike.

"raw-again" is the noise floor of the run: its difference from "raw" is an A/A
comparison. Unlike in ``overhead.py`` it runs on a copy of its own, not on the raw
model, because "fabric" has to: Fabric's DDP wrapper needs a model of its own (two
wrappers on one model would both hook its gradients), and separate copies of the same
model differ in step time from memory layout alone, which the A/A comparison then
includes too.

Every step is timed on its own on every rank, in wall-clock time and in the main thread's
CPU time (which leaves out waiting for the other rank and time off the core, and so moves
less with other load on the machine). Rank 0 reports the median step time of each loop
(its own, and the other rank's ratio), the ratio of the medians, the overhead in
microseconds per step and the median of the per-round ratios, and the same for CPU time.

Budget (DESIGN.md section 10): DDP on 2 processes, step time within 2% of hand-written
DDP. This is a measurement, not a test: nothing here asserts.

Run from the repository root (it starts the second process itself)::

    python benchmarks/ddp_overhead.py
    python benchmarks/ddp_overhead.py --rounds 200 --json
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from _common import (
    STATS_HEADER,
    Comparison,
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
    run_round,
    stats_row,
)
from torch.nn.parallel import DistributedDataParallel

from fabric_core import Fabric

PROCESSES = 2
LOOPS = ("raw", "fabric", "raw-again")


@dataclass
class RankResult:
    """What one rank measured."""

    rank: int
    wall: Comparison
    cpu: Comparison
    paired_round_ratio_median: float
    max_param_difference: float


@dataclass
class DDPOverheadResult:
    processes: int
    hidden: int
    batch_per_rank: int
    optimizer: str
    steps_per_round: int
    rounds: int
    warmup_steps: int
    check_steps: int
    threads_per_rank: int
    backend: str
    ranks: list[RankResult]
    # rank 0's figures, repeated at the top level for convenience
    ratio_of_medians: float
    overhead_us_per_step: float
    overhead_percent: float
    noise_floor_us: float
    max_param_difference: float
    cpu_ratio_of_medians: float
    cpu_overhead_us_per_step: float
    cpu_noise_floor_us: float
    environment: dict[str, Any] = field(default_factory=dict)


def release_ddp(module: DistributedDataParallel) -> None:
    """Free a DDP wrapper's C++ reducer now, while the process group still exists.

    Fabric's ``DDPStrategy.teardown`` does this for the wrappers it made (left to interpreter
    shutdown, gloo's threads can be destroyed in the wrong order and abort the process);
    the hand-written wrapper here is not Fabric's, so it is released by hand.
    """
    for attribute in ("logger", "reducer"):
        if hasattr(module, attribute):
            delattr(module, attribute)


def measure_rank(fabric: Fabric, args: argparse.Namespace) -> RankResult:
    """One rank's measurement (every rank runs this, in step with the others)."""
    rank = fabric.global_rank
    features, classes = args.hidden, 10
    torch.manual_seed(0)
    base = make_mlp(args.hidden, features, classes)
    # Each rank gets its own batches, as a distributed sampler would give.
    data = make_batches(args.batches, args.batch, features, classes, seed=1234 + rank)

    # Three copies with identical initial weights: hand-written DDP, Fabric, hand-written DDP again.
    raw_model, user_model, again_model = copy.deepcopy(base), copy.deepcopy(base), copy.deepcopy(base)
    raw_ddp = DistributedDataParallel(raw_model)
    again_ddp = DistributedDataParallel(again_model)
    fabric_model, fabric_optimizer = fabric.setup(user_model, make_optimizer(user_model))
    loops: dict[str, Step] = {
        "raw": raw_step(raw_ddp, make_optimizer(raw_model)),
        "fabric": fabric_step(fabric, fabric_model, fabric_optimizer),
        "raw-again": raw_step(again_ddp, make_optimizer(again_model)),
    }

    try:
        # Same work: the copies, trained on the same batches, must end with the same weights.
        scratch: list[float] = []
        for name in LOOPS:
            run_round(loops[name], data, args.check_steps, 0, scratch, scratch)
        difference = torch.tensor(max_parameter_difference(raw_model, user_model), dtype=torch.float64)
        dist.all_reduce(difference, op=dist.ReduceOp.MAX)

        # Warm-up: allocator, autograd graph caches, gloo buffers, branch predictors.
        for name in LOOPS:
            dist.barrier()
            run_round(loops[name], data, args.warmup, 0, scratch, scratch)

        # A barrier before every round: both ranks start (and so time) the same loop together.
        times = interleaved_rounds(loops, data, args.rounds, args.steps, before_round=dist.barrier, with_cpu=True)
    finally:
        release_ddp(raw_ddp)
        release_ddp(again_ddp)

    return RankResult(
        rank=rank,
        wall=Comparison.of(times.wall),
        cpu=Comparison.of(times.cpu),
        paired_round_ratio_median=times.paired_ratio_median(),
        max_param_difference=float(difference.item()),
    )


def run(fabric: Fabric, args: argparse.Namespace) -> DDPOverheadResult | None:
    """Runs on every rank after ``fabric.launch``; returns the whole result on rank 0, ``None`` elsewhere."""
    mine = measure_rank(fabric, args)
    gathered: list[Any] = [None] * fabric.world_size
    dist.all_gather_object(gathered, asdict(mine))
    if not fabric.is_global_zero:
        return None
    ranks = [
        RankResult(**{**item, "wall": Comparison.from_dict(item["wall"]), "cpu": Comparison.from_dict(item["cpu"])})
        for item in gathered
    ]
    return DDPOverheadResult(
        processes=fabric.world_size,
        hidden=args.hidden,
        batch_per_rank=args.batch,
        optimizer="sgd",
        steps_per_round=args.steps,
        rounds=args.rounds,
        warmup_steps=args.warmup,
        check_steps=args.check_steps,
        threads_per_rank=torch.get_num_threads(),
        backend=str(dist.get_backend()),
        ranks=ranks,
        ratio_of_medians=mine.wall.ratio_of_medians,
        overhead_us_per_step=mine.wall.overhead_us_per_step,
        overhead_percent=mine.wall.overhead_percent,
        noise_floor_us=mine.wall.noise_floor_us,
        max_param_difference=mine.max_param_difference,
        cpu_ratio_of_medians=mine.cpu.ratio_of_medians,
        cpu_overhead_us_per_step=mine.cpu.overhead_us_per_step,
        cpu_noise_floor_us=mine.cpu.noise_floor_us,
        environment=environment(),
    )


def report(result: DDPOverheadResult) -> str:
    zero = result.ranks[0]
    wall, cpu = zero.wall, zero.cpu
    lines = [
        f"fabric-core DDP step overhead  ({result.processes} processes, {result.backend}, MLP hidden={result.hidden}, "
        f"batch={result.batch_per_rank} per rank, {result.optimizer}, "
        f"torch threads={result.threads_per_rank} per rank)",
        f"  {result.rounds} interleaved rounds x {result.steps_per_round} steps per loop, "
        f"{result.warmup_steps} warm-up steps per loop, a barrier before every round",
        f"  {'rank 0':<12}{STATS_HEADER}   (µs per step, wall clock)",
        stats_row("raw DDP", wall.raw, width=12),
        stats_row("fabric DDP", wall.fabric, width=12),
        stats_row("raw-again", wall.raw_again, width=12),
        *ratio_lines(wall, "< 2%"),
        f"  median of per-round ratios (fabric/raw): {zero.paired_round_ratio_median:.4f}",
    ]
    for other in result.ranks[1:]:
        lines.append(
            f"  rank {other.rank}: raw {other.wall.raw.median_us:.1f} µs, fabric {other.wall.fabric.median_us:.1f} µs, "
            f"ratio {other.wall.ratio_of_medians:.4f} ({other.wall.overhead_us_per_step:+.1f} µs), "
            f"noise floor {other.wall.noise_floor_us:+.1f} µs"
        )
    lines += [
        "  rank 0 main-thread CPU time per step (medians; leaves out waiting and time off the core):",
        f"    raw {cpu.raw.median_us:.1f} µs, fabric {cpu.fabric.median_us:.1f} µs, raw-again "
        f"{cpu.raw_again.median_us:.1f} µs; ratio {cpu.ratio_of_medians:.4f}, overhead "
        f"{cpu.overhead_us_per_step:+.1f} µs ({cpu.overhead_percent:+.2f}%), noise floor {cpu.noise_floor_us:+.1f} µs",
        f"  same work: max |raw - fabric| parameter difference after {result.check_steps} steps "
        f"(all ranks): {result.max_param_difference:.3g}",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round and loop (default 20)")
    parser.add_argument("--rounds", type=int, default=100, help="interleaved rounds per loop (default 100)")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up steps per loop (default 100)")
    parser.add_argument("--hidden", type=int, default=512, help="MLP width, also the input size (default 512)")
    parser.add_argument("--batch", type=int, default=64, help="batch size per rank (default 64)")
    parser.add_argument("--batches", type=int, default=16, help="distinct in-memory batches cycled (default 16)")
    parser.add_argument(
        "--check-steps", type=int, default=10, help="steps of the same-work check before timing (default 10)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the text report")
    args = parser.parse_args(argv)
    if min(args.steps, args.rounds, args.batches, args.check_steps) < 1 or args.warmup < 0:
        parser.error("--steps, --rounds, --batches and --check-steps must be at least 1, --warmup at least 0")
    if args.steps * args.rounds < 2:
        parser.error("time at least 2 steps per loop (--steps x --rounds)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # 2 processes on a 2-core machine: one compute thread each, or they fight over the cores.
    torch.set_num_threads(1)
    fabric = Fabric(accelerator="cpu", devices=PROCESSES, strategy="ddp")
    result = fabric.launch(run, args)
    if result is None:
        return
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        print(report(result))


if __name__ == "__main__":
    main()
