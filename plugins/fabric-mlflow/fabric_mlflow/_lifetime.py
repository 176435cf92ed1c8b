"""How a run lives on each rank and ends: the statuses ``finalize`` sets, the stand-in client of
ranks other than 0, and asynchronous writes kept through interpreter shutdown."""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fabric_mlflow.logger import MLFlowLogger

#: What ``finalize(status)`` receives, and the MLflow run status each one sets.
STATUSES: dict[str, str] = {
    "success": "FINISHED",
    "finished": "FINISHED",
    "failed": "FAILED",
    "killed": "KILLED",
    "FINISHED": "FINISHED",
    "FAILED": "FAILED",
    "KILLED": "KILLED",
}


def wait_before_interpreter_shutdown(logger: MLFlowLogger) -> None:
    """Have ``logger``'s asynchronous writes stored before the interpreter starts shutting down.

    MLflow sends them from a thread pool, which refuses new work once the interpreter shuts
    down; that happens before ``atexit`` callbacks, where Fabric tears down a plain script's
    run (and MLflow drains its own queue). So the writes of a script that ends, or raises,
    with some still queued would be lost. ``threading._register_atexit`` is what
    ``concurrent.futures`` uses for the same reason: its callbacks run before that shutdown.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is None:
        return
    reference = weakref.ref(logger)

    def wait() -> None:
        alive = reference()
        if alive is not None and alive._pending:
            alive.save()

    try:
        register(wait)
    except RuntimeError:  # the interpreter is shutting down already
        pass


class NoExperiment:
    """``experiment`` on ranks other than 0: any method call or item access does nothing."""

    def _nothing(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return self._nothing

    def __getitem__(self, key: Any) -> NoExperiment:
        return self

    def __setitem__(self, key: Any, value: Any) -> None:
        pass
