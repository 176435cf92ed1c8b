"""Workers that stop when the ``fabric run`` that started them is gone.

``fabric run`` runs torchrun in its own process, and torchrun starts the workers as its
children. If ``fabric run`` is killed with SIGKILL, torchrun cannot stop them: they would
be left running (or hanging in a collective), holding devices and ports. So ``fabric run``
puts its process id in :data:`LAUNCHER_PID_VARIABLE`, and each worker's ``Fabric()`` calls
:func:`watch_launcher`: Linux sends the worker SIGTERM when its parent dies
(``PR_SET_PDEATHSIG``), and a watcher thread makes sure it ends a few seconds later even if
the script handles SIGTERM itself.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

#: set by ``fabric run`` to its own process id, for the workers it starts
LAUNCHER_PID_VARIABLE = "FABRIC_LAUNCHER_PID"

_POLL_SECONDS = 0.5
_GRACE_SECONDS = 5.0
_watching = {"started": False}


def launched_by_fabric_run() -> bool:
    """Whether this process is a worker that ``fabric run`` started."""
    value = os.environ.get(LAUNCHER_PID_VARIABLE, "")
    return value.isdigit() and int(value) != os.getpid()


def watch_launcher() -> None:
    """Stop this process when the ``fabric run`` launcher that started it dies; once per process."""
    if _watching["started"] or not launched_by_fabric_run():
        return
    _watching["started"] = True
    launcher = int(os.environ[LAUNCHER_PID_VARIABLE])
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    threading.Thread(target=_watch, args=(parent, launcher), name="fabric-launcher-watcher", daemon=True).start()


def _watch(parent: int, launcher: int) -> None:
    # When the parent dies the worker is re-parented, so its parent id changes. A launcher
    # that is not the parent (some wrapper in between) is watched by its own id.
    while os.getppid() == parent and (parent == launcher or process_alive(launcher)):
        time.sleep(_POLL_SECONDS)
    sys.stderr.write(
        f"fabric: the launcher that started this worker (fabric run, pid {launcher}) is gone; stopping "
        f"this worker (pid {os.getpid()}).\n"
    )
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(_GRACE_SECONDS)
    os._exit(1)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
