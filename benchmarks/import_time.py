"""What ``import fabric_core`` costs on top of ``import torch``.

Every figure comes from fresh Python processes, repeated and reduced to medians, with the
two variants interleaved so that drift hits both alike:

* wall time of ``python -c "import torch"`` against ``python -c "import torch; import fabric_core"``
  and their difference (noisy: torch's own import varies by tens of ms between runs);
* inside the second process, the time of ``import fabric_core`` right after ``import torch``
  (the precise figure);
* the ``-X importtime`` top contributors of fabric_core's own import (the modules imported
  after torch: fabric_core's and its dependencies'), by self time, and the self time summed
  per top-level package.

Two bytecode states are measured, because they differ by a factor of about two:

* ``cached``: compiled bytecode is available, as after a normal install. The processes get a
  private ``PYTHONPYCACHEPREFIX`` (under the temp dir, so nothing is written into the
  source tree) and one priming run fills it.
* ``as-is``: the inherited environment. With ``PYTHONDONTWRITEBYTECODE=1`` and an editable
  install without ``__pycache__`` folders, fabric_core is compiled from source every time.

Budget (DESIGN.md section 10): under 100 ms over ``import torch``. A measurement, not a
test: nothing here asserts.

Run from the repository root::

    python benchmarks/import_time.py
    python benchmarks/import_time.py --repeat 15 --json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _common import run_json_snippet

_TORCH_ONLY = """
import json, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
print(json.dumps({"torch": t1 - t0}))
"""

_TORCH_THEN_FABRIC = """
import json, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import fabric_core
t2 = time.perf_counter()
print(json.dumps({"torch": t1 - t0, "fabric_core": t2 - t1}))
"""

_IMPORTTIME_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s+)(\S+)\s*$")


@dataclass
class StateResult:
    """Medians (ms) for one bytecode state."""

    state: str
    runs: int
    torch_only_wall_ms: float | None = None
    torch_and_fabric_wall_ms: float | None = None
    wall_difference_ms: float | None = None
    wall_min_difference_ms: float | None = None
    torch_in_process_ms: float = 0.0
    fabric_core_after_torch_ms: float = 0.0
    fabric_core_after_torch_min_ms: float = 0.0


@dataclass
class ImportRow:
    module: str
    self_ms: float
    cumulative_ms: float
    depth: int


@dataclass
class ImportTimeResult:
    python: str
    states: list[StateResult] = field(default_factory=list)
    importtime_runs: int = 0
    importtime_total_ms: float = 0.0
    top_self: list[ImportRow] = field(default_factory=list)
    by_package_ms: dict[str, float] = field(default_factory=dict)


def environment_for(state: str, cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    if state == "cached":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache_dir)
    return env


def measure_state(state: str, repeat: int, cache_dir: Path, with_wall: bool) -> StateResult:
    env = environment_for(state, cache_dir)
    run_json_snippet(_TORCH_THEN_FABRIC, env)  # priming: fills the bytecode cache, warms the page cache
    torch_wall: list[float] = []
    both_wall: list[float] = []
    torch_in_process: list[float] = []
    fabric_after_torch: list[float] = []
    for index in range(repeat):
        order = ("both", "torch") if index % 2 else ("torch", "both")
        for variant in order:
            if variant == "torch":
                if not with_wall:
                    continue
                wall, _, _ = run_json_snippet(_TORCH_ONLY, env)
                torch_wall.append(wall)
            else:
                wall, values, _ = run_json_snippet(_TORCH_THEN_FABRIC, env)
                both_wall.append(wall)
                torch_in_process.append(values["torch"])
                fabric_after_torch.append(values["fabric_core"])
    result = StateResult(
        state=state,
        runs=repeat,
        torch_in_process_ms=statistics.median(torch_in_process),
        fabric_core_after_torch_ms=statistics.median(fabric_after_torch),
        fabric_core_after_torch_min_ms=min(fabric_after_torch),
    )
    if with_wall:
        result.torch_only_wall_ms = statistics.median(torch_wall)
        result.torch_and_fabric_wall_ms = statistics.median(both_wall)
        result.wall_difference_ms = result.torch_and_fabric_wall_ms - result.torch_only_wall_ms
        result.wall_min_difference_ms = min(both_wall) - min(torch_wall)
    return result


def parse_importtime(stderr: str) -> list[ImportRow]:
    """The rows ``-X importtime`` printed after the top-level ``torch`` line: fabric_core's import."""
    rows: list[ImportRow] = []
    after_torch = False
    for line in stderr.splitlines():
        match = _IMPORTTIME_LINE.match(line)
        if match is None:
            continue
        self_us, cumulative_us, indent, name = match.groups()
        depth = (len(indent) - 1) // 2
        if not after_torch:
            after_torch = depth == 0 and name == "torch"
            continue
        rows.append(ImportRow(name, int(self_us) / 1000.0, int(cumulative_us) / 1000.0, depth))
    return rows


def measure_importtime(runs: int, cache_dir: Path, top: int) -> tuple[float, list[ImportRow], dict[str, float]]:
    """Median over ``runs`` of each module's self time: the total, the top rows, the sums per top-level package."""
    env = environment_for("cached", cache_dir)
    per_module: dict[str, list[ImportRow]] = {}
    for _ in range(runs):
        _, _, stderr = run_json_snippet(_TORCH_THEN_FABRIC, env, extra=("-X", "importtime"))
        for row in parse_importtime(stderr):
            per_module.setdefault(row.module, []).append(row)
    merged = [
        ImportRow(
            module=name,
            self_ms=statistics.median(row.self_ms for row in rows),
            cumulative_ms=statistics.median(row.cumulative_ms for row in rows),
            depth=rows[0].depth,
        )
        for name, rows in per_module.items()
    ]
    total = sum(row.self_ms for row in merged)
    top_self = sorted(merged, key=lambda row: row.self_ms, reverse=True)[:top]
    packages: dict[str, float] = {}
    for row in merged:
        package = row.module.split(".")[0]
        packages[package] = packages.get(package, 0.0) + row.self_ms
    by_package = dict(sorted(packages.items(), key=lambda item: item[1], reverse=True))
    return total, top_self, by_package


def report(result: ImportTimeResult) -> str:
    lines = [f"fabric-core import time (Python {result.python}; medians over fresh processes)"]
    for state in result.states:
        lines.append(f"[{state.state}] {state.runs} runs per variant")
        if state.wall_difference_ms is not None:
            lines.append(
                f"  wall: python -c 'import torch' {state.torch_only_wall_ms:.0f} ms; "
                f"+ import fabric_core {state.torch_and_fabric_wall_ms:.0f} ms; "
                f"difference of medians {state.wall_difference_ms:+.0f} ms, of minima "
                f"{state.wall_min_difference_ms:+.0f} ms (noisy: torch's import varies more than this)"
            )
        lines.append(
            f"  in process: import torch {state.torch_in_process_ms:.0f} ms, then import fabric_core "
            f"{state.fabric_core_after_torch_ms:.1f} ms (min {state.fabric_core_after_torch_min_ms:.1f}; "
            "budget < 100 ms)"
        )
    if result.importtime_runs:
        lines.append(
            f"-X importtime after torch, cached bytecode (median of {result.importtime_runs} runs): "
            f"{result.importtime_total_ms:.1f} ms in all"
        )
        lines.append("  top modules by self time:")
        lines += [f"    {row.self_ms:7.2f} ms  {row.module}" for row in result.top_self]
        lines.append("  self time summed per top-level package (fabric_core and what it pulls in besides torch):")
        lines += [f"    {ms:7.2f} ms  {package}" for package, ms in result.by_package_ms.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="import fabric_core on top of import torch, in fresh processes.")
    parser.add_argument("--repeat", type=int, default=6, help="fresh processes per variant and state (default 6)")
    parser.add_argument("--importtime-runs", type=int, default=3, help="-X importtime runs; 0 skips (default 3)")
    parser.add_argument("--top", type=int, default=12, help="rows in the -X importtime tables (default 12)")
    parser.add_argument(
        "--states",
        default="cached,as-is",
        help="comma-separated bytecode states to measure: cached, as-is (default both)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the text report")
    args = parser.parse_args(argv)
    states = [state.strip() for state in args.states.split(",") if state.strip()]
    unknown = sorted(set(states) - {"cached", "as-is"})
    if unknown or args.repeat < 1:
        parser.error(f"--states takes cached and/or as-is (got {unknown}); --repeat must be at least 1")

    cache_dir = Path(tempfile.gettempdir()) / "fabric-core-bench-pycache"
    result = ImportTimeResult(python=sys.version.split()[0])
    for state in states:
        # The wall-clock comparison only for the cached state: it is the costly part.
        result.states.append(measure_state(state, args.repeat, cache_dir, with_wall=state == "cached"))
    if args.importtime_runs > 0:
        total, top_self, by_package = measure_importtime(args.importtime_runs, cache_dir, args.top)
        result.importtime_runs = args.importtime_runs
        result.importtime_total_ms = total
        result.top_self = top_self
        result.by_package_ms = by_package
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        print(report(result))


if __name__ == "__main__":
    main()
