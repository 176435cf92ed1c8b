"""Running a test script as a real program: the kit's :func:`fabric_core.testing.run_script`, for the core's tests.

The core's scripts also import from this repository (``tests.helpers...``), so the
repository root is their ``PYTHONPATH``; and they keep the thread count the test set
(``fabric run`` tests check what it does with ``OMP_NUM_THREADS``).
"""

from __future__ import annotations

from pathlib import Path

from fabric_core.testing import ScriptRun, processes_with_marker
from fabric_core.testing import run_script as _run_script

__all__ = ["ROOT", "Run", "processes_with_marker", "run_script"]

ROOT = Path(__file__).resolve().parents[2]

#: what :func:`run_script` returns (``returncode``, ``output``, ``marker``; ``check()``)
Run = ScriptRun


def run_script(folder: Path, source: str, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Run:
    """Write ``source`` to ``folder/script.py`` and run it with the repository on ``PYTHONPATH``; see the kit's."""
    return _run_script(
        folder, source, *args, timeout=timeout, env={"PYTHONPATH": str(ROOT), **(env or {})}, omp_threads=None
    )
