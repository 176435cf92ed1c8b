"""``ddp_spawn``, ``ddp_fork``, ``ddp_notebook``: local ranks as child processes of this one.

The function passed to ``fabric.launch(fn)`` runs in every child; rank 0's return value
comes back to the caller. ``spawn`` pickles the Fabric object and the arguments and
imports the main module afresh (so the script needs an ``if __name__ == "__main__"``
guard); ``fork`` copies the process and works in notebooks, but only where the platform
can fork and CUDA is not yet initialised.

A child that :class:`~fabric_core.preemption.Preemption` ends after the checkpoint returns
normally instead of exiting with its code (torch's ``join`` would take a non-zero exit for
a failure and stop the other children); once every child has ended, the launching process
ends with that code (``Preempted``, a ``SystemExit``), read from the ranks' records. A
SIGTERM for the launching process is passed on to the children while they run (a
scheduler may signal only the first process), unless the script handles SIGTERM itself.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch
from torch.multiprocessing.spawn import ProcessExitedException, ProcessRaisedException, start_processes

from fabric_core.strategies.launchers._errors import ERROR_DIR_VARIABLE, make_error_dir, recorded_preemptions
from fabric_core.strategies.launchers.launcher import Launcher, is_interactive, limit_threads_per_process

if TYPE_CHECKING:
    from fabric_core.strategies.strategy import Strategy


def _main_has_guard() -> bool:
    import __main__

    main_file = getattr(__main__, "__file__", None)
    if main_file is None or not os.path.isfile(main_file):
        return True
    with open(main_file, encoding="utf-8", errors="replace") as file:
        source = file.read()
    return "__name__" in source and "__main__" in source


class MultiProcessingLauncher(Launcher):
    """Starts ``num_processes`` children with ``torch.multiprocessing`` and runs the function in each.

    :param strategy: its ``local_rank`` is set in each child before the function runs.
    :param start_method: ``"spawn"``, ``"fork"`` or ``"forkserver"``.
    """

    def __init__(self, strategy: Strategy, start_method: str = "spawn") -> None:
        self._strategy = strategy
        self._start_method = start_method
        if start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"The start method {start_method!r} is not available on this platform "
                f"(available: {', '.join(multiprocessing.get_all_start_methods())}). Use strategy='ddp_spawn'."
            )

    requires_function = True

    @property
    def is_interactive_compatible(self) -> bool:
        return self._start_method == "fork"

    def launch(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._start_method == "spawn" and is_interactive():
            raise RuntimeError(
                "strategy='ddp_spawn' cannot start processes from an interactive session or notebook: the children "
                "must import your code from a file. Use strategy='ddp_notebook' here, or run a script."
            )
        if self._start_method == "spawn" and not _main_has_guard():
            raise RuntimeError(
                "strategy='ddp_spawn' imports your script again in every child process, and your script has no "
                '`if __name__ == "__main__":` guard, so each child would start the run again. Put the code that '
                "calls fabric.launch() under that guard, or use strategy='ddp' (which needs no guard)."
            )
        if self._start_method in ("fork", "forkserver") and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
            raise RuntimeError(
                f"strategy with start method {self._start_method!r} cannot be used after CUDA was initialised in "
                "this process (forked children cannot use it). Move CUDA calls after fabric.launch(), or use "
                "strategy='ddp_spawn'."
            )
        environment = self._strategy.cluster_environment
        assert environment is not None
        os.environ["MASTER_ADDR"] = environment.main_address
        os.environ["MASTER_PORT"] = str(environment.main_port)
        context = torch.multiprocessing.get_context(self._start_method)
        results = context.SimpleQueue()
        num_processes = len(self._strategy.parallel_devices)
        limit_threads_per_process(num_processes)
        error_dir = make_error_dir("fabric-spawn-")
        rng_states = _capture_rng_states(self._start_method)
        forwarded: list[signal.Signals] = []
        previous = None
        try:
            processes = start_processes(  # type: ignore[no-untyped-call]
                _run_rank,
                args=(self._strategy, function, args, kwargs, results, rng_states, error_dir),
                nprocs=num_processes,
                start_method=self._start_method,
                join=False,
            )
            previous = _forward_sigterm(processes, forwarded)
            result: list[bytes] = []
            # Read rank 0's result while waiting: a result larger than the pipe's buffer blocks
            # its put() until it is read, and its process would never end.
            while not processes.join(timeout=0.05):
                if not result and not results.empty():
                    result.append(results.get())
            if not result and not results.empty():
                result.append(results.get())
            _end_if_preempted(error_dir)
        except ProcessRaisedException as err:
            raise RuntimeError(f"A process of the run failed; its traceback follows.\n{err}") from None
        except ProcessExitedException as err:
            if forwarded:  # ended on the SIGTERM this process got and passed on, as this process would have
                sys.stderr.write(
                    f"fabric: got SIGTERM and passed it on to the processes of the run; process {err.error_index} "
                    f"ended on it (exit code {err.exit_code}) without a Preemption checkpoint.\n"
                )
                raise SystemExit(128 + int(signal.SIGTERM)) from None
            raise RuntimeError(
                f"Process {err.error_index} of the run exited with code {err.exit_code} without a Python error "
                "(killed, or out of memory?). The other processes were stopped."
            ) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            shutil.rmtree(error_dir, ignore_errors=True)
        return pickle.loads(result[0]) if result else None


def _forward_sigterm(processes: Any, forwarded: list[signal.Signals]) -> Any:
    """Pass a SIGTERM for this process on to the children while they run; the handler it replaced.

    A scheduler may signal only this process (Kubernetes signals the container's first
    process): the children's :class:`~fabric_core.preemption.Preemption` must get it to
    checkpoint. Nothing is installed where the script handles SIGTERM itself, or outside the
    main thread (Python installs handlers only there); ``None`` then.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None

    def forward(signum: int, frame: FrameType | None) -> None:
        forwarded.append(signal.Signals(signum))
        for process in processes.processes:
            if process.is_alive():
                os.kill(process.pid, signum)

    return signal.signal(signal.SIGTERM, forward)


def _end_if_preempted(error_dir: str) -> None:
    """End this process the way the children's :class:`~fabric_core.preemption.Preemption` ended them, if it did."""
    ended = recorded_preemptions(error_dir)
    if not ended:
        return
    from fabric_core.preemption import Preempted

    first = ended[min(ended)]
    raise Preempted(first.code, signal.Signals[first.signal], first.step)


def _run_rank(
    process_index: int,
    strategy: Strategy,
    function: Callable[..., Any],
    args: tuple,
    kwargs: dict,
    results: Any,
    rng_states: tuple[Any, ...] | None,
    error_dir: str,
) -> None:
    from fabric_core.preemption import Preempted

    if rng_states is not None:
        _restore_rng_states(rng_states)
    os.environ[ERROR_DIR_VARIABLE] = error_dir  # for Preemption's record; not set in the launching process
    strategy.set_local_rank(process_index)  # type: ignore[attr-defined]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))  # forked: not re-read
    try:
        result = function(*args, **kwargs)
    except Preempted:
        return  # its record is written; the launching process ends with its code once all have ended
    if process_index == 0:
        # Plain pickle bytes, not the queue's own pickling: torch would send tensors through
        # shared memory that disappears when this process exits.
        from fabric_core.utilities.apply_func import move_data_to_device

        results.put(pickle.dumps(move_data_to_device(result, "cpu")))


def _capture_rng_states(start_method: str) -> tuple[Any, ...] | None:
    """The random states a spawned child would not inherit (a forked one does), as Lightning restores them."""
    if start_method == "fork":
        return None
    import random

    import numpy as np

    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _restore_rng_states(states: tuple[Any, ...]) -> None:
    import random

    import numpy as np

    python_state, numpy_state, torch_state = states
    random.setstate(python_state)
    np.random.set_state(numpy_state)
    torch.set_rng_state(torch_state)
