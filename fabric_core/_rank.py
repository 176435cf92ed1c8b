"""The one place that records which process this is.

Once a strategy knows this process's global rank, :func:`record_rank` tells everything
that reports per process: ``rank_zero_only`` (and the warnings and messages shown once
per job), the library's log messages (bound with rank and world size) and, for a process
that a launcher started among others, the uncaught-exception hook that names the rank and
leaves a record for the launcher (:mod:`fabric_core.strategies.launchers._errors`).
"""

from __future__ import annotations

from fabric_core import _logging
from fabric_core.strategies.launchers._errors import install_rank_excepthook
from fabric_core.utilities.rank_zero import rank_zero_only


def record_rank(rank: int, world_size: int, *, report_uncaught: bool = False) -> None:
    """Record this process's global ``rank`` among ``world_size`` processes.

    :param report_uncaught: also make an uncaught exception name the rank and leave a record
        for the launcher that watches this process (the multi-process strategies ask for it
        before they start the process group, so a failure there is reported with its rank).
    """
    rank_zero_only.rank = rank  # type: ignore[attr-defined]
    _logging.set_rank(rank, world_size)
    if report_uncaught:
        install_rank_excepthook(rank)
