"""What the benchmark scripts share: toy models and data, timed loops, statistics, reports.

The scripts import it as a sibling module (``from _common import ...``): Python puts a
script's own folder first on ``sys.path``, so ``python benchmarks/overhead.py`` finds it,
and so do the ranks that ``fabric.launch()`` starts by running the script again.

* toy workload: :func:`make_mlp`, :func:`make_batches`, :func:`make_optimizer`;
* the two loops every comparison times: :func:`raw_step` (hand-written PyTorch) and
  :func:`fabric_step` (the same loop through ``fabric.backward`` and the wrapped optimizer);
* timing: :func:`run_round` (one timed step after another), :func:`interleaved_rounds`
  (rounds of several loops with a rotating order, so that drift hits all alike),
  :func:`per_call_us` and :func:`compare_calls` (``timeit`` micro-benchmarks);
* statistics: :class:`LoopStats` / :func:`summarize`, :class:`Comparison` (a loop against
  the raw loop and the raw-again A/A noise floor);
* fresh processes: :func:`run_json_snippet` (a ``python -c`` snippet that prints one JSON line);
* reports: :func:`environment`, :func:`stats_row`, :func:`ratio_lines`.

Nothing here asserts: benchmarks measure, they do not test.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from fabric_core import Fabric

Step = Callable[["Tensor", "Tensor"], None]
Batches = list[tuple["Tensor", "Tensor"]]


# -- the toy workload ---------------------------------------------------------------------------


def make_mlp(hidden: int, features: int, classes: int) -> nn.Module:
    """Three linear layers with ReLUs: the 'small MLP' of the budgets."""
    from torch import nn

    return nn.Sequential(
        nn.Linear(features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, classes),
    )


def make_batches(count: int, batch: int, features: int, classes: int, seed: int = 1234) -> Batches:
    """``count`` synthetic classification batches, in memory, the same for the same ``seed``."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(batch, features, generator=generator),
            torch.randint(0, classes, (batch,), generator=generator),
        )
        for _ in range(count)
    ]


def make_optimizer(model: nn.Module, name: str = "sgd") -> torch.optim.Optimizer:
    """SGD with momentum 0.9 (``"sgd"``) or Adam (``"adam"``)."""
    import torch

    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=1e-3)
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def raw_step(model: nn.Module, optimizer: torch.optim.Optimizer, precision: str = "32-true") -> Step:
    """The hand-written step a user writes without Fabric.

    With ``bf16-mixed`` the forward runs under ``torch.autocast("cpu", dtype=torch.bfloat16)``
    and the output is cast back to float32, as Fabric's mixed precision does.
    """
    import torch
    import torch.nn.functional as F

    if precision == "bf16-mixed":

        def mixed_step(x: Tensor, y: Tensor) -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                output = model(x)
            loss = F.cross_entropy(output.float(), y)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()

        return mixed_step

    def step(x: Tensor, y: Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        output = model(x)
        loss = F.cross_entropy(output, y)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()

    return step


def fabric_step(fabric: Fabric, model: nn.Module, optimizer: torch.optim.Optimizer) -> Step:
    """The same step through Fabric (the wrapped model and optimizer ``fabric.setup`` returned)."""
    import torch.nn.functional as F

    def step(x: Tensor, y: Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        output = model(x)
        loss = F.cross_entropy(output, y)
        fabric.backward(loss)
        optimizer.step()

    return step


def max_parameter_difference(a: nn.Module, b: nn.Module) -> float:
    """The largest absolute difference between two models' parameters (0 when they did the same work)."""
    return max(
        (p.detach() - q.detach()).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )


# -- timing -------------------------------------------------------------------------------------


def run_round(
    step: Step, data: Batches, steps: int, start: int, wall: list[float], cpu: list[float] | None = None
) -> float:
    """Run ``steps`` steps on ``data`` (cycled from ``start``); return the round's mean wall time per step (µs).

    Each step's wall-clock time (µs) is appended to ``wall``, and, when ``cpu`` is given, the
    main thread's CPU time, which leaves out waiting for other ranks and time off the core.
    """
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    count = len(data)
    round_start = clock()
    if cpu is None:
        for index in range(start, start + steps):
            x, y = data[index % count]
            begin = clock()
            step(x, y)
            wall.append((clock() - begin) / 1000.0)
    else:
        for index in range(start, start + steps):
            x, y = data[index % count]
            begin, cpu_begin = clock(), cpu_clock()
            step(x, y)
            cpu_end, end = cpu_clock(), clock()
            wall.append((end - begin) / 1000.0)
            cpu.append((cpu_end - cpu_begin) / 1000.0)
    return (clock() - round_start) / 1000.0 / steps if steps else 0.0


@dataclass
class RoundTimes:
    """Per-step times and per-round means of every loop of :func:`interleaved_rounds` (µs)."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]
    round_means: dict[str, list[float]]

    def paired_ratio_median(self, loop: str = "fabric", reference: str = "raw") -> float:
        """The median over rounds of ``loop``'s mean step time over ``reference``'s."""
        ratios = [a / b for a, b in zip(self.round_means[loop], self.round_means[reference], strict=True)]
        return statistics.median(ratios)


def interleaved_rounds(
    loops: dict[str, Step],
    data: Batches,
    rounds: int,
    steps: int,
    before_round: Callable[[], Any] | None = None,
    with_cpu: bool = False,
) -> RoundTimes:
    """Time ``rounds`` rounds of ``steps`` steps of every loop, the order rotating every round.

    Rotating means no loop always runs right after the same other one, so drift of the
    machine (frequency, other load) hits all loops alike. ``before_round`` runs before each
    loop's round (a barrier, so that all ranks time the same loop together). ``with_cpu``
    also records the main thread's CPU time of every step (one more clock read per step).
    """
    names = list(loops)
    times = RoundTimes({n: [] for n in names}, {n: [] for n in names}, {n: [] for n in names})
    position = 0
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            if before_round is not None:
                before_round()
            cpu = times.cpu[name] if with_cpu else None
            mean = run_round(loops[name], data, steps, position, times.wall[name], cpu)
            times.round_means[name].append(mean)
        position += steps
    return times


def per_call_us(function: Callable[[], Any], number: int, repeat: int) -> list[float]:
    """``repeat`` samples of the time per call of ``function`` (µs), each over ``number`` calls."""
    timer = timeit.Timer(function)
    return [seconds / number * 1e6 for seconds in timer.repeat(repeat=repeat, number=number)]


def compare_calls(cases: dict[str, Callable[[], Any]], number: int, repeat: int) -> dict[str, float]:
    """Median µs per call of every case, with the cases' samples interleaved after a warm-up."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for function in cases.values():
        per_call_us(function, number // 10 or 1, 1)
    for _ in range(repeat):
        for name, function in cases.items():
            samples[name].extend(per_call_us(function, number, 1))
    return {name: statistics.median(values) for name, values in samples.items()}


# -- statistics ---------------------------------------------------------------------------------


@dataclass
class LoopStats:
    """Step times of one loop, in microseconds."""

    median_us: float
    mean_us: float
    p10_us: float
    p90_us: float
    steps: int


def summarize(times: Iterable[float]) -> LoopStats:
    """Median, mean, 10th and 90th percentile of step times."""
    ordered = sorted(times)
    deciles = statistics.quantiles(ordered, n=10)
    return LoopStats(
        median_us=statistics.median(ordered),
        mean_us=statistics.fmean(ordered),
        p10_us=deciles[0],
        p90_us=deciles[-1],
        steps=len(ordered),
    )


@dataclass
class Comparison:
    """Fabric's loop against the raw loop, with the raw-again loop as the A/A noise floor."""

    raw: LoopStats
    fabric: LoopStats
    raw_again: LoopStats
    ratio_of_medians: float
    overhead_us_per_step: float
    overhead_percent: float
    noise_floor_us: float

    @classmethod
    def of(cls, times: dict[str, list[float]]) -> Comparison:
        """From the per-step times of the loops ``raw``, ``fabric`` and ``raw-again``."""
        raw, fabric, again = summarize(times["raw"]), summarize(times["fabric"]), summarize(times["raw-again"])
        overhead = fabric.median_us - raw.median_us
        return cls(
            raw=raw,
            fabric=fabric,
            raw_again=again,
            ratio_of_medians=fabric.median_us / raw.median_us,
            overhead_us_per_step=overhead,
            overhead_percent=100.0 * overhead / raw.median_us,
            noise_floor_us=again.median_us - raw.median_us,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        """Back from ``dataclasses.asdict`` (as it travels between ranks)."""
        loops = {key: LoopStats(**data[key]) for key in ("raw", "fabric", "raw_again")}
        return cls(**{**data, **loops})


# -- fresh processes ----------------------------------------------------------------------------


def run_json_snippet(
    snippet: str, env: dict[str, str] | None = None, extra: tuple[str, ...] = ()
) -> tuple[float, dict[str, float], str]:
    """Run ``snippet`` in a fresh interpreter; return its wall time (ms), its last printed JSON line
    with every value taken as seconds and converted to ms, and its stderr."""
    begin = time.perf_counter()
    completed = subprocess.run([sys.executable, *extra, "-c", snippet], capture_output=True, text=True, env=env)
    wall = (time.perf_counter() - begin) * 1000.0
    if completed.returncode != 0:
        raise RuntimeError(f"the benchmark subprocess failed:\n{completed.stderr.strip()}")
    values = json.loads(completed.stdout.strip().splitlines()[-1])
    return wall, {key: seconds * 1000.0 for key, seconds in values.items()}, completed.stderr


# -- reports ------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """Python, torch and fabric-core versions, platform and CPU count, for the JSON output."""
    import torch

    import fabric_core

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "fabric_core": fabric_core.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


STATS_HEADER = f"{'median':>10}{'mean':>10}{'p10':>10}{'p90':>10}"


def stats_row(name: str, stats: LoopStats, width: int = 10) -> str:
    """One table row: the loop's name, then median, mean, p10 and p90 (µs)."""
    return f"  {name:<{width}}{stats.median_us:>10.1f}{stats.mean_us:>10.1f}{stats.p10_us:>10.1f}{stats.p90_us:>10.1f}"


def ratio_lines(comparison: Comparison, budget: str) -> list[str]:
    """The ratio of medians, the overhead against ``budget`` and the noise floor, one line each."""
    floor_percent = 100.0 * comparison.noise_floor_us / comparison.raw.median_us
    return [
        f"  ratio fabric/raw of medians: {comparison.ratio_of_medians:.4f}",
        f"  overhead: {comparison.overhead_us_per_step:+.1f} µs per step "
        f"({comparison.overhead_percent:+.2f}%; budget {budget})",
        f"  noise floor (raw-again - raw): {comparison.noise_floor_us:+.1f} µs per step ({floor_percent:+.2f}%)",
    ]
