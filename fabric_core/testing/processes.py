"""Running a script as a real program (``python script.py``), as users do, and checking what it left.

A multi-process test is a real multi-process test: the script's ``fabric.launch()`` starts
the other ranks, over gloo on a CPU machine. Every process of a run carries a unique marker
in its environment, so that a test can check afterwards that none of them is left running.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

from fabric_core.environments.local import find_free_port
from fabric_core.testing.environ import clean_environment

__all__ = ["MARKER_VARIABLE", "ScriptRun", "find_free_port", "processes_with_marker", "run_script"]

#: The variable that carries a run's marker to every process it starts.
MARKER_VARIABLE = "FABRIC_TEST_MARKER"


@dataclass
class ScriptRun:
    """The outcome of :func:`run_script`.

    :ivar returncode: the script's exit status.
    :ivar output: stdout, then stderr.
    :ivar marker: the value of ``FABRIC_TEST_MARKER`` in every process of the run
        (see :func:`processes_with_marker`).
    """

    returncode: int
    output: str
    marker: str

    def check(self) -> str:
        """The output, after asserting that the script exited with status 0 (the output is the message)."""
        assert self.returncode == 0, f"the script exited with status {self.returncode}:\n{self.output}"
        return self.output


def run_script(
    folder: Path,
    source: str,
    *args: str,
    timeout: float = 240,
    env: dict[str, str] | None = None,
    omp_threads: int | None = 1,
) -> ScriptRun:
    """Write ``source`` (dedented) to ``folder/script.py`` and run it in ``folder`` with ``args``.

    The script gets :func:`~fabric_core.testing.clean_environment` (this process's
    environment without a launcher's variables), a fresh ``FABRIC_TEST_MARKER``, then
    ``env``.

    :param timeout: seconds before the run is killed and ``subprocess.TimeoutExpired`` raised.
    :param omp_threads: ``OMP_NUM_THREADS`` unless set already; ``None`` leaves it alone.
    """
    script = folder / "script.py"
    script.write_text(textwrap.dedent(source), encoding="utf-8")
    marker = f"fabric-test-{uuid.uuid4().hex}"
    environment = clean_environment({MARKER_VARIABLE: marker, **(env or {})}, omp_threads=omp_threads)
    result = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return ScriptRun(result.returncode, result.stdout + result.stderr, marker)


def processes_with_marker(marker: str) -> list[int]:
    """PIDs of the live processes (zombies left out) whose environment holds ``marker``.

    Reads ``/proc``, so it finds processes on Linux only; elsewhere it returns ``[]``.
    """
    found: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
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
