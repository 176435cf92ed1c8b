"""Running a real training script on N processes with any registered strategy (for add-on test suites)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from fabric_core.environments._variables import is_launcher_variable

_SCRIPT = """
import sys
from fabric_core import Fabric
from fabric_core.testing.checks import check_checkpoint_round_trip, check_collectives, check_training_reduces_loss

fabric = Fabric(accelerator="cpu", devices=int(sys.argv[2]), strategy=sys.argv[1], precision=sys.argv[3])
fabric.launch()
check_collectives(fabric)
check_training_reduces_loss(fabric)
check_checkpoint_round_trip(fabric, sys.argv[4])
print(f"CONFORMANCE OK rank {fabric.global_rank}", flush=True)
"""


def run_training_script(
    strategy: str,
    devices: int,
    folder: Path,
    precision: str = "32-true",
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> str:
    """Run the conformance checks on ``devices`` real processes; return the output, raise on failure.

    The script starts its processes itself (``fabric.launch()``), so the variables of a
    launcher the test session may run under (torchrun's, SLURM's, a leftover ``MASTER_PORT``)
    are not passed on: they would make it join that run instead. ``env`` is added last.
    """
    script = folder / "conformance_script.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    environment = {name: value for name, value in os.environ.items() if not is_launcher_variable(name)}
    result = subprocess.run(
        [sys.executable, str(script), strategy, str(devices), precision, str(folder / "conformance_checkpoint")],
        cwd=folder,
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    missing = [rank for rank in range(devices) if f"CONFORMANCE OK rank {rank}" not in output]
    if result.returncode != 0 or missing:
        raise AssertionError(f"strategy={strategy!r} on {devices} processes failed the conformance run:\n{output}")
    return output
