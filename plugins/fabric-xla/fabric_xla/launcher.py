"""Starting the processes of an ``xla``/``xla_fsdp`` run with XLA's own launcher, ``torch_xla.launch``.

XLA's launcher starts one process per device of the host (it cannot start any other
number) and gives each its PJRT ordinal; under torchrun it runs the function in the
process torchrun started instead. With one device the function runs in this process. The
return value of global rank 0 comes back to the caller, as with fabric-core's launchers.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

import torch
from fabric_core.strategies.launchers.launcher import Launcher, is_interactive

if TYPE_CHECKING:
    from fabric_core.strategies.strategy import Strategy


class XLALauncher(Launcher):
    """Runs the function given to ``fabric.launch(fn)`` on every XLA device, through ``torch_xla.launch``.

    :param strategy: the XLA strategy whose devices are launched.
    :param start_method: ``"spawn"`` (the default, as torch_xla's) or ``"fork"`` (notebooks).
    """

    requires_function = True

    def __init__(self, strategy: Strategy, start_method: str = "spawn") -> None:
        if start_method not in ("spawn", "fork", "forkserver"):
            raise ValueError(f"XLA start_method={start_method!r}: expected 'spawn', 'fork' or 'forkserver'.")
        self._strategy = strategy
        self._start_method = start_method

    @property
    def is_interactive_compatible(self) -> bool:
        return self._start_method == "fork"

    def launch(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        import torch_xla

        processes = len(self._strategy.parallel_devices)
        if processes == 1:
            results: list[Any] = []
            torch_xla.launch(_run_in_this_process, args=(function, args, kwargs, results), debug_single_process=True)
            return results[0] if results else None
        if self._start_method == "spawn" and is_interactive():
            raise RuntimeError(
                "strategy='xla' with start_method='spawn' cannot start processes from an interactive session: the "
                "children import your code from a file. Use XLAStrategy(start_method='fork') here, or run a script."
            )
        queue = torch.multiprocessing.get_context(self._start_method).SimpleQueue()
        try:
            torch_xla.launch(_run_process, args=(function, args, kwargs, queue), start_method=self._start_method)
        except BrokenProcessPool as err:
            raise RuntimeError(
                "A process of the XLA run exited without a Python error (killed, out of memory, or aborted by the "
                "XLA runtime: its log above says why). The other processes were stopped."
            ) from err
        return pickle.loads(queue.get()) if not queue.empty() else None


def _run_in_this_process(index: int, function: Callable[..., Any], args: tuple, kwargs: dict, results: list) -> None:
    results.append(function(*args, **kwargs))


def _run_process(index: int, function: Callable[..., Any], args: tuple, kwargs: dict, queue: Any) -> None:
    result = function(*args, **kwargs)
    if index == 0:
        # Plain pickle bytes of CPU data: XLA tensors cannot cross processes, and torch would
        # send CPU tensors through shared memory that disappears when this process exits.
        from fabric_core.utilities.apply_func import move_data_to_device

        queue.put(pickle.dumps(move_data_to_device(result, "cpu")))
