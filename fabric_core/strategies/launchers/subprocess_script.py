"""``strategy="ddp"``: rank 0 re-runs the user's command for the other local ranks.

Every rank runs the whole script, as with torchrun, so the script needs no ``__main__``
guard and nothing has to be pickled. Rank 0 watches the others: when one exits with an
error, rank 0 prints which rank failed first and its traceback, stops every process and
exits non-zero. The other ranks die with rank 0 (Linux parent-death signal), so no process
is left behind.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from fabric_core.environments.cluster_environment import ClusterEnvironment
from fabric_core.strategies.launchers._errors import ERROR_DIR_VARIABLE, first_error, state
from fabric_core.strategies.launchers.launcher import Launcher, limit_threads_per_process

_POLL_SECONDS = 0.1


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

    @property
    def is_interactive_compatible(self) -> bool:
        return False

    def launch(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self.cluster_environment.creates_processes_externally:
            self._start_children()
        return function(*args, **kwargs)

    def _start_children(self) -> None:
        command = _script_command()
        self._error_dir = tempfile.mkdtemp(prefix="fabric-errors-")
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
        threading.Thread(target=self._watch, name="fabric-rank-watcher", daemon=True).start()

    def _watch(self) -> None:
        """Rank 0's watchdog: a child that fails brings the whole run down, loudly."""
        while True:
            for local_rank, process in enumerate(self.procs, start=1):
                code = process.poll()
                if code is not None and code != 0:
                    self._fail(local_rank, code)
                    return
            if all(process.poll() == 0 for process in self.procs):
                return
            time.sleep(_POLL_SECONDS)

    def _fail(self, local_rank: int, code: int) -> None:
        self._report(f"local rank {local_rank} exited with code {code}; see its output above")
        self._stop_children()
        os._exit(1)

    def _at_exit(self) -> None:
        # Rank 0 finished: wait for the others to finish too (the watchdog still runs and
        # exits non-zero if one fails). If rank 0 itself failed, stop them at once.
        if not state["failed"]:
            for process in self.procs:
                process.wait()
        else:
            self._report("rank 0 failed; see its traceback above")
        self._stop_children()

    def _report(self, fallback: str) -> None:
        """Print, once, which rank failed first and how (the watchdog and the exit handler race for it)."""
        with self._report_lock:
            if self._reported:
                return
            self._reported = True
            time.sleep(0.5)  # let the failing rank and the ranks it took down record their errors
            found = first_error(self._error_dir) if self._error_dir else None
            if found is not None:
                message = f"\nfabric: rank {found[0]} failed first:\n{found[1]}"
            else:
                message = f"\nfabric: {fallback}.\n"
            sys.stderr.write(message + "fabric: stopping all processes.\n")
            sys.stderr.flush()

    def _stop_children(self) -> None:
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
