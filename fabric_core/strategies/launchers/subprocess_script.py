"""``strategy="ddp"``: rank 0 re-runs the user's command for the other local ranks.

Every rank runs the whole script, as with torchrun, so the script needs no ``__main__``
guard and nothing has to be pickled. Rank 0 watches the others: when one exits with an
error, rank 0 prints which rank failed first and how (its traceback, the signal that
killed it, its exit code, or that it exited early while the others waited for it; see
:func:`~fabric_core.strategies.launchers._errors.root_cause`), stops every process and
exits non-zero. The other ranks die with rank 0 (Linux parent-death signal), so no process
is left behind.

A rank that :class:`~fabric_core.preemption.Preemption` ended after the checkpoint exits
with 128 + the signal but left a ``rank-N.preempted`` record: that is no failure, so rank 0
neither reports it nor stops the others (every rank ends by itself after the checkpoint's
barrier), and rank 0 ends with the same code.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from fabric_core.environments.cluster_environment import ClusterEnvironment
from fabric_core.strategies.launchers._errors import (
    ERROR_DIR_VARIABLE,
    RankEnd,
    is_consequence,
    make_error_dir,
    recorded_errors,
    recorded_preemptions,
    root_cause,
    state,
)
from fabric_core.strategies.launchers.launcher import Launcher, limit_threads_per_process

#: How long the failure report waits for the ranks' ends to show which one failed first.
_SETTLE_SECONDS = 5.0


def _script_command() -> list[str]:
    """The command that started this process, runnable again (``python script.py`` or ``python -m pkg``)."""
    import __main__

    spec = getattr(__main__, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        module = spec.name[: -len(".__main__")] if spec.name.endswith(".__main__") else spec.name
        return [sys.executable, "-m", module, *sys.argv[1:]]
    main_file = getattr(__main__, "__file__", None)
    if main_file is None:
        raise RuntimeError(
            "strategy='ddp' starts the other processes by running your script again, but this is an interactive "
            "session with no script. Use strategy='ddp_notebook' (or 'ddp_fork') here, or run a script."
        )
    return [sys.executable, os.path.abspath(main_file), *sys.argv[1:]]


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask Linux to SIGTERM it if rank 0 dies.
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


class SubprocessScriptLauncher(Launcher):
    """Starts local ranks ``1..n-1`` as copies of the running command.

    :param cluster_environment: supplies the main address and port and the node rank.
    :param num_processes: local processes on this node.
    :param num_nodes: nodes in the run.
    """

    def __init__(self, cluster_environment: ClusterEnvironment, num_processes: int, num_nodes: int) -> None:
        self.cluster_environment = cluster_environment
        self.num_processes = num_processes
        self.num_nodes = num_nodes
        self.procs: list[subprocess.Popen[bytes]] = []
        self._error_dir: str | None = None
        self._reported = False
        self._report_lock = threading.Lock()
        self._stopping = False
        #: local rank -> (when its process ended, exit code), filled in by the watchdogs
        self._ends: dict[int, tuple[float, int]] = {}
        self._watchdogs: list[threading.Thread] = []

    @property
    def is_interactive_compatible(self) -> bool:
        return False

    def launch(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self.cluster_environment.creates_processes_externally:
            self._start_children()
        return function(*args, **kwargs)

    def _start_children(self) -> None:
        command = _script_command()
        self._error_dir = make_error_dir("fabric-errors-")
        os.environ["MASTER_ADDR"] = self.cluster_environment.main_address
        os.environ["MASTER_PORT"] = str(self.cluster_environment.main_port)
        os.environ[ERROR_DIR_VARIABLE] = self._error_dir
        os.environ.setdefault("NODE_RANK", str(self.cluster_environment.node_rank()))
        os.environ["LOCAL_WORLD_SIZE"] = str(self.num_processes)
        limit_threads_per_process(self.num_processes)
        os.environ["WORLD_SIZE"] = str(self.num_processes * self.num_nodes)
        for local_rank in range(1, self.num_processes):
            env = {**os.environ, "LOCAL_RANK": str(local_rank)}
            self.procs.append(subprocess.Popen(command, env=env, preexec_fn=_die_with_parent))
        os.environ["LOCAL_RANK"] = "0"
        atexit.register(self._at_exit)
        for local_rank, process in enumerate(self.procs, start=1):
            watchdog = threading.Thread(
                target=self._wait_for, args=(local_rank, process), name=f"fabric-rank-watcher-{local_rank}", daemon=True
            )
            watchdog.start()
            self._watchdogs.append(watchdog)

    def _wait_for(self, local_rank: int, process: subprocess.Popen[bytes]) -> None:
        """Rank 0's watchdog for one child: record when and how it ended; a failure brings the run down."""
        code = process.wait()
        self._ends[local_rank] = (time.time(), code)  # when it ended, not when the report runs
        if code != 0 and not self._stopping and not self._preempted(local_rank):
            self._report()
            self._stop_children()
            os._exit(1)

    def _preempted(self, local_rank: int) -> bool:
        """Whether this rank ended through preemption: its record says the checkpoint ran on every rank.

        However it then ended counts (its code, or the SIGTERM with which SLURM ends a job it
        requeued): the checkpoint is complete.
        """
        if self._error_dir is None:
            return False
        return self._global_rank(local_rank) in recorded_preemptions(self._error_dir)

    def _at_exit(self) -> None:
        # Rank 0 finished: wait for the others to finish too (the watchdogs still run and
        # exit non-zero if one fails). If rank 0 itself failed, stop them at once.
        if not state["failed"]:
            for watchdog in self._watchdogs:  # each judges its rank's end (a preemption record?) before the cleanup
                watchdog.join()
        else:
            self._report()
        self._stop_children()

    def _global_rank(self, local_rank: int) -> int:
        return self.cluster_environment.node_rank() * self.num_processes + local_rank

    def _report(self) -> None:
        """Print, once, which rank failed first and how (the watchdogs and the exit handler race for it)."""
        with self._report_lock:
            if self._reported:
                return
            self._reported = True
            ends, cause = self._settled_ends()
            if cause is None:
                message = "\nfabric: rank 0 failed; see its traceback above.\n"
            else:
                message = f"\nfabric: rank {cause.rank} failed first: it {cause.how()}.\n"
                if cause.error:
                    message += cause.error.rstrip() + "\n"
                others = sorted(rank for rank in ends if rank != cause.rank)
                if others:
                    message += f"fabric: ranks that failed after it: {', '.join(map(str, others))}.\n"
            sys.stderr.write(message + "fabric: stopping all processes.\n")
            sys.stderr.flush()

    def _settled_ends(self) -> tuple[dict[int, RankEnd], RankEnd | None]:
        """How each rank ended and which failed first, once the picture is clear enough to say.

        The failing rank and the ranks it took down record their errors and exits within
        moments; on a loaded machine the consequences (a peer's "connection closed") can be
        recorded before the cause (the rank that exited). So wait, up to
        ``_SETTLE_SECONDS``, until every child has ended or the failure known so far is not
        a mere consequence of another rank's and its rank's exit is recorded.
        """
        deadline = time.monotonic() + _SETTLE_SECONDS
        time.sleep(0.2)
        while True:
            recorded = recorded_errors(self._error_dir) if self._error_dir else {}
            ends = {rank: RankEnd(rank, stamp, error=text) for rank, (stamp, text) in recorded.items()}
            for local_rank, (ended, code) in list(self._ends.items()):
                if code != 0 and self._preempted(local_rank):
                    continue  # ended after the checkpoint: not part of the failure
                rank = self._global_rank(local_rank)
                error = recorded.get(rank)
                failed_at = min(ended, error[0]) if error else ended
                ends[rank] = RankEnd(rank, failed_at, code=code, error=error[1] if error else None)
            cause = root_cause(list(ends.values()))
            all_ended = len(self._ends) == len(self.procs)
            # Named once it is no mere consequence and its exit (its code) is recorded, unless it is this process.
            original = cause is not None and not is_consequence(cause.error or "")
            named = cause is not None and original and (cause.code is not None or cause.rank == self._global_rank(0))
            if all_ended or named or time.monotonic() >= deadline:
                return ends, cause
            time.sleep(0.05)

    def _stop_children(self) -> None:
        self._stopping = True  # the watchdogs must not take the ranks stopped here for failures
        for process in self.procs:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 5
        for process in self.procs:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        if self._error_dir is not None:
            shutil.rmtree(self._error_dir, ignore_errors=True)
