"""Processes started by SLURM (``srun`` inside an ``sbatch`` allocation).

Behaviour follows Lightning Fabric's ``SLURMEnvironment``:

* detected when ``SLURM_NTASKS`` is set, except in an interactive allocation (job name
  ``bash`` or ``interactive``, as ``salloc``/``srun --pty bash`` give), where the user
  starts processes by hand and Fabric should launch them itself;
* ranks from ``SLURM_PROCID`` (global), ``SLURM_LOCALID`` (local), ``SLURM_NODEID`` (node),
  world size from ``SLURM_NTASKS``;
* the main address is ``MASTER_ADDR`` when set, else the first host of ``SLURM_NODELIST``;
* the main port is ``MASTER_PORT`` when set, else ``15000`` plus the last four digits of
  ``SLURM_JOB_ID`` (every task computes the same port without talking to the others), else
  ``12910``.

With ``auto_requeue=True`` (Lightning's default) global rank 0 handles a signal, ``SIGUSR1``
unless told otherwise, by running ``scontrol requeue <job id>``; submit with ``#SBATCH
--signal=SIGUSR1@90`` to get the signal 90 seconds before the time limit. An environment
found by automatic detection is created with ``auto_requeue=False`` and installs no
handler: pass ``SLURMEnvironment()`` in ``Fabric(plugins=[...])`` to be requeued.

The variables that are set are checked when the environment is created: a non-integer
rank or size, a ``MASTER_PORT`` that is not a port, or ``SLURM_PROCID`` not below
``SLURM_NTASKS`` raises an ``EnvironmentVariableError`` (a ``RuntimeError`` and a
``ValueError``) naming the variable and its value, instead of a hang at the rendezvous.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from fabric_core import _logging
from fabric_core.environments._hostlist import first_host
from fabric_core.environments._variables import check_rank, first_set, read_int, read_port
from fabric_core.environments.cluster_environment import ExternallyLaunchedEnvironment

__all__ = ["SLURMEnvironment", "parse_tasks_per_node"]

_log = _logging.get_logger(__name__)

#: Job names that mark an interactive allocation (Lightning's rule).
INTERACTIVE_JOB_NAMES = ("bash", "interactive")
#: ``main_port`` is this plus the last four digits of the job id.
PORT_OFFSET = 15000
#: ``main_port`` when neither ``MASTER_PORT`` nor ``SLURM_JOB_ID`` is set.
DEFAULT_PORT = 12910
#: The command run on the requeue signal; the job id is appended.
DEFAULT_REQUEUE_COMMAND = ("scontrol", "requeue")

_HINT = "SLURM sets it for every task that srun starts: run the script as `srun python script.py`."
_OWNER = "SLURMEnvironment"
_TASKS_ITEM = re.compile(r"^\s*(\d+)\s*(?:\(\s*x\s*(\d+)\s*\))?\s*$")

_SignalHandler = Callable[[int, FrameType | None], Any] | int | None


def parse_tasks_per_node(value: str) -> list[int]:
    """Expand SLURM's tasks-per-node notation: ``"2(x3),1"`` -> ``[2, 2, 2, 1]``.

    ``SLURM_TASKS_PER_NODE`` uses it for uneven allocations; ``SLURM_NTASKS_PER_NODE`` is
    usually a plain number (``"4"`` -> ``[4]``).

    :raises ValueError: when ``value`` is not in that notation.
    """
    counts: list[int] = []
    for item in value.split(","):
        match = _TASKS_ITEM.match(item)
        if match is None:
            raise ValueError(f"Cannot read tasks per node from {value!r}: expected a form like '4' or '2(x3),1'.")
        counts.extend([int(match.group(1))] * int(match.group(2) or 1))
    return counts


def _job_name() -> str | None:
    return os.environ.get("SLURM_JOB_NAME")


def _is_interactive() -> bool:
    return _job_name() in INTERACTIVE_JOB_NAMES


class SLURMEnvironment(ExternallyLaunchedEnvironment):
    """Ranks, world size and rendezvous address from the variables SLURM sets for each task.

    :param auto_requeue: on global rank 0, handle ``requeue_signal`` by requeueing the job
        (on by default, as in Lightning; automatic detection creates the environment with
        ``auto_requeue=False``).
    :param requeue_signal: the signal to handle; ``SIGUSR1`` when ``None`` (only handled
        with ``auto_requeue=True``).
    :param requeue_command: the command to run, the job id appended;
        ``("scontrol", "requeue")`` (found on ``PATH``) by default.
    :raises EnvironmentVariableError: when a SLURM variable that is set is malformed.
    """

    launcher_name = "SLURM"

    def __init__(
        self,
        auto_requeue: bool = True,
        requeue_signal: signal.Signals | None = None,
        requeue_command: Sequence[str] | None = None,
    ) -> None:
        self.validate_variables()
        command = tuple(DEFAULT_REQUEUE_COMMAND if requeue_command is None else requeue_command)
        if not command or not all(isinstance(part, str) and part for part in command):
            raise ValueError(
                f"SLURMEnvironment(requeue_command={requeue_command!r}): expected a non-empty sequence of strings, "
                "such as ('scontrol', 'requeue')."
            )
        self.auto_requeue = auto_requeue
        self.requeue_signal: signal.Signals = requeue_signal if requeue_signal is not None else signal.SIGUSR1
        self.requeue_command: tuple[str, ...] = command
        self._previous_handler: _SignalHandler = None
        self._handler_installed = False
        if auto_requeue:
            self._install_requeue_handler()

    @staticmethod
    def validate_variables() -> None:
        """Check the SLURM variables that are set: integers where integers belong, ranks in range.

        :raises EnvironmentVariableError: naming the variable and its value.
        """
        for name in ("SLURM_NTASKS", "SLURM_NNODES"):
            if os.environ.get(name, "").strip():
                read_int(name, owner=_OWNER, hint=_HINT, minimum=1)
        for name in ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID"):
            if os.environ.get(name, "").strip():
                read_int(name, owner=_OWNER, hint=_HINT)
        if os.environ.get("MASTER_PORT", "").strip():
            read_port("MASTER_PORT", owner=_OWNER)
        check_rank("SLURM_PROCID", "SLURM_NTASKS", owner=_OWNER, hint=_HINT)
        check_rank("SLURM_NODEID", "SLURM_NNODES", owner=_OWNER, hint=_HINT)

    # -- ClusterEnvironment -----------------------------------------------------------------

    @property
    def main_address(self) -> str:
        """``MASTER_ADDR``, else the first host of ``SLURM_NODELIST``, else ``127.0.0.1``."""
        address = os.environ.get("MASTER_ADDR")
        if address:
            return address
        found = first_set(("SLURM_NODELIST", "SLURM_JOB_NODELIST"))
        if found is None:
            return "127.0.0.1"
        name, nodelist = found
        try:
            return first_host(nodelist)
        except ValueError as err:
            raise RuntimeError(f"SLURMEnvironment cannot read the main node from {name}={nodelist!r}: {err}") from err

    @property
    def main_port(self) -> int:
        """``MASTER_PORT``, else ``15000`` + the last four digits of ``SLURM_JOB_ID``, else ``12910``."""
        if os.environ.get("MASTER_PORT", "").strip():
            return read_port("MASTER_PORT", owner=_OWNER)
        digits = "".join(char for char in os.environ.get("SLURM_JOB_ID", "") if char.isdigit())
        if not digits:
            return DEFAULT_PORT
        return PORT_OFFSET + int(digits[-4:])

    @classmethod
    def detect(cls) -> bool:
        """``SLURM_NTASKS`` is set and the job is not an interactive allocation."""
        return "SLURM_NTASKS" in os.environ and not _is_interactive()

    def world_size(self) -> int:
        return read_int("SLURM_NTASKS", owner=_OWNER, hint=_HINT, minimum=1)

    def global_rank(self) -> int:
        return read_int("SLURM_PROCID", owner=_OWNER, hint=_HINT)

    def local_rank(self) -> int:
        return read_int("SLURM_LOCALID", owner=_OWNER, hint=_HINT)

    def node_rank(self) -> int:
        return read_int("SLURM_NODEID", owner=_OWNER, hint=_HINT, default=0)

    def local_world_size(self) -> int:
        """Tasks on this node: ``SLURM_NTASKS_PER_NODE``, else this node's entry of
        ``SLURM_TASKS_PER_NODE``, else ``SLURM_NTASKS / SLURM_NNODES``."""
        node = self.node_rank()
        for name in ("SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE"):
            value = os.environ.get(name)
            if not value:
                continue
            try:
                counts = parse_tasks_per_node(value)
            except ValueError as err:
                raise RuntimeError(f"SLURMEnvironment: {name}={value!r} cannot be read: {err}") from err
            return counts[0] if len(counts) == 1 else counts[min(node, len(counts) - 1)]
        nodes = max(1, read_int("SLURM_NNODES", owner=_OWNER, hint=_HINT, default=1))
        return max(1, self.world_size() // nodes)

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        """``devices * num_nodes`` must equal ``SLURM_NTASKS`` (one task per device), and agree
        with ``SLURM_NTASKS_PER_NODE`` and ``SLURM_NNODES`` when those are set.

        Skipped in an interactive allocation, where Fabric starts the processes itself.
        """
        if _is_interactive():
            return
        ntasks = self.world_size()
        requested = num_devices * num_nodes
        if requested != ntasks:
            raise ValueError(
                f"Fabric(devices={num_devices}, num_nodes={num_nodes}) asks for {requested} processes, but the SLURM "
                f"job runs SLURM_NTASKS={ntasks} tasks. SLURM starts one task per device: submit with "
                f"`#SBATCH --nodes={num_nodes}` and `#SBATCH --ntasks-per-node={num_devices}`, or change devices "
                f"and num_nodes so that devices * num_nodes = {ntasks}."
            )
        per_node = os.environ.get("SLURM_NTASKS_PER_NODE")
        if per_node and per_node.strip().isdigit() and int(per_node) != num_devices:
            raise ValueError(
                f"Fabric(devices={num_devices}) does not match the SLURM job's `--ntasks-per-node={per_node}` "
                f"(SLURM_NTASKS_PER_NODE). Set devices={per_node}, or submit with "
                f"`#SBATCH --ntasks-per-node={num_devices}`."
            )
        nnodes = os.environ.get("SLURM_NNODES")
        if nnodes and nnodes.strip().isdigit() and int(nnodes) != num_nodes:
            raise ValueError(
                f"Fabric(num_nodes={num_nodes}) does not match the SLURM job's `--nodes={nnodes}` (SLURM_NNODES). "
                f"Set num_nodes={nnodes}, or submit with `#SBATCH --nodes={num_nodes}`."
            )

    def teardown(self) -> None:
        """Put back the signal handler that was there before the requeue handler."""
        if self._handler_installed:
            previous = self._previous_handler
            # None: the previous handler was not installed from Python; the default is the best guess.
            signal.signal(self.requeue_signal, signal.SIG_DFL if previous is None else previous)
            self._handler_installed = False

    def __repr__(self) -> str:
        if not self.auto_requeue:
            return "SLURMEnvironment(auto_requeue=False)"
        return f"SLURMEnvironment(auto_requeue=True, requeue_signal={self.requeue_signal.name})"

    # -- SLURM specifics ----------------------------------------------------------------------

    @staticmethod
    def job_name() -> str | None:
        """``SLURM_JOB_NAME``, or ``None`` outside SLURM."""
        return _job_name()

    @staticmethod
    def job_id() -> str | None:
        """The id to requeue: ``<array job>_<task>`` for an array task, else ``SLURM_JOB_ID``."""
        array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
        array_task = os.environ.get("SLURM_ARRAY_TASK_ID")
        if array_job and array_task:
            return f"{array_job}_{array_task}"
        return os.environ.get("SLURM_JOB_ID") or None

    @property
    def requeue_handler_installed(self) -> bool:
        """Whether this process handles ``requeue_signal`` (global rank 0 with ``auto_requeue`` only)."""
        return self._handler_installed

    def _install_requeue_handler(self) -> None:
        rank = os.environ.get("SLURM_PROCID", "0").strip()
        if rank != "0":
            return  # one requeue per job: only global rank 0 asks for it
        if threading.current_thread() is not threading.main_thread():
            _log.warning(
                "SLURMEnvironment(auto_requeue=True) was created outside the main thread; Python only installs "
                "signal handlers from the main thread, so the job will not be requeued on the signal",
                signal=self.requeue_signal.name,
            )
            return
        self._previous_handler = signal.signal(self.requeue_signal, self._on_requeue_signal)
        self._handler_installed = True

    def _on_requeue_signal(self, signum: int, frame: FrameType | None) -> None:
        self.requeue()
        previous = self._previous_handler
        if callable(previous):
            previous(signum, frame)

    def requeue(self) -> bool:
        """Run the requeue command for this job now; ``True`` when it succeeded."""
        job_id = self.job_id()
        if job_id is None:
            _log.warning("cannot requeue: SLURM_JOB_ID is not set", command=" ".join(self.requeue_command))
            return False
        command = [*self.requeue_command, job_id]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError) as err:
            _log.warning("requeueing the SLURM job failed", command=" ".join(command), error=str(err))
            return False
        if result.returncode != 0:
            _log.warning(
                "requeueing the SLURM job failed",
                command=" ".join(command),
                returncode=result.returncode,
                stderr=result.stderr.strip(),
            )
            return False
        _log.warning("requeued the SLURM job", job_id=job_id, command=" ".join(command))
        return True
