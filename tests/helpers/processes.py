"""Running a test script as a real program (``python script.py``), as users do."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    returncode: int
    output: str
    marker: str


def run_script(folder: Path, source: str, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Run:
    """Write ``source`` to ``folder/script.py`` and run it; stdout and stderr together.

    Every process of the run carries a unique marker in its environment, so a test can
    check afterwards that none of them is left.
    """
    script = folder / "script.py"
    script.write_text(textwrap.dedent(source))
    marker = f"fabric-test-{uuid.uuid4().hex}"
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "FABRIC_TEST_MARKER": marker, **(env or {})}
    for variable in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR", "NODE_RANK", "GROUP_RANK"):
        environment.pop(variable, None)
    result = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(result.returncode, result.stdout + result.stderr, marker)


def processes_with_marker(marker: str) -> list[int]:
    """PIDs of live processes whose environment holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                status = (entry / "status").read_text()
                if "State:\tZ" not in status:
                    found.append(int(entry.name))
        except OSError:
            continue
    return found
