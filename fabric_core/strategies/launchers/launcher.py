"""The launcher interface."""

from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any


class Launcher(ABC):
    """Starts the processes of a run and runs a function in each."""

    @property
    @abstractmethod
    def is_interactive_compatible(self) -> bool:
        """Whether it works from a notebook or an interactive Python shell."""

    #: whether the processes run only the function given to ``launch`` (so one is required)
    requires_function: bool = False

    @abstractmethod
    def launch(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Start the processes, run ``function(*args, **kwargs)`` in each, return rank 0's result."""


def is_interactive() -> bool:
    """Whether this code runs in a notebook or an interactive Python shell rather than from a script.

    There, a launcher cannot start processes that run the script again or import it
    (``ddp``, ``ddp_spawn``); only forking (``ddp_notebook``) works.
    """
    import __main__

    return not hasattr(__main__, "__file__") or hasattr(sys, "ps1")


def limit_threads_per_process(num_processes: int) -> None:
    """Share the cores between the local processes, as torchrun does, unless OMP_NUM_THREADS is set.

    Without it every process starts one thread per core, and N processes on N cores spend
    their time fighting over them (tens of times slower for small models).
    """
    if "OMP_NUM_THREADS" in os.environ:
        return
    threads = max(1, (os.cpu_count() or 1) // max(1, num_processes))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
