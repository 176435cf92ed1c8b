"""Where a ``Fabric``'s run stands, and the moves between: launch, environment set-up, teardown.

A run is *launched* once (``fabric.launch()``, or by being started under ``fabric run``,
torchrun or srun), its *environment* is set up once (the strategy's process group, the
rank recorded, ``fabric_on_launch`` fired) on the first thing that needs it, and it is
*torn down* once (``fabric_on_teardown``, then the strategy's teardown), at the end of the
launched function or at interpreter exit (:func:`teardown_at_exit`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fabric_core import _logging, _validation
from fabric_core._rank import record_rank
from fabric_core.strategies.launchers import _errors

if TYPE_CHECKING:
    from fabric_core._plugin_manager import FabricHooks
    from fabric_core.strategies.strategy import Strategy


_log = _logging.get_logger("fabric_core.fabric")  # the teardown at exit reports as the Fabric


class Lifecycle:
    """The launch, environment and teardown state of one Fabric's run (pickled with it to spawned processes)."""

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self.launched = False
        self.environment_ready = False
        self.torn_down = False

    @property
    def started_outside(self) -> bool:
        """Whether a launcher other than Fabric (fabric run, torchrun, srun, ...) started this run's processes."""
        environment = self.strategy.cluster_environment
        return environment is not None and bool(environment.creates_processes_externally)

    def launch(self, run: Callable[..., Any], function: Callable[..., Any] | None, args: Any, kwargs: Any) -> Any:
        """``fabric.launch``: start the strategy's processes, each calling ``run(function, *args, **kwargs)``."""
        _validation.check_launch_callable(function)
        if self.launched:
            raise RuntimeError("fabric.launch() was called twice; call it once, at the start of the script.")
        if self.started_outside:
            # The processes and the process group exist already: launching is a no-op, so
            # scripts written with or without launch() both run.
            self.launched = True
            return run(function, *args, **kwargs)
        _validation.check_launch_signature(function)
        _validation.check_launcher_can_start(self.strategy, function)
        self.launched = True
        if self.strategy.launcher is not None:
            return self.strategy.launcher.launch(run, function, *args, **kwargs)
        return run(function, *args, **kwargs)

    def set_up_environment(self, hooks: FabricHooks) -> None:
        """Once per run: the strategy's environment (process group), the rank recorded, ``fabric_on_launch``."""
        if self.environment_ready:
            return
        self.strategy.setup_environment()
        record_rank(self.strategy.global_rank, self.strategy.world_size)
        _logging.set_step_source(hooks)
        self.environment_ready = True
        hooks.on_launch()

    def require_launched(self, hooks: FabricHooks) -> None:
        """Refuse to go on in a multi-process run that was not launched; otherwise set up the environment."""
        _validation.check_launched(self.strategy, self.launched, self.started_outside)
        self.set_up_environment(hooks)

    def teardown(self, hooks: FabricHooks, status: str) -> None:
        """Once per run: ``fabric_on_teardown(status)``, then the strategy's teardown."""
        if self.torn_down:
            return
        self.torn_down = True
        hooks.on_teardown(status)
        self.strategy.teardown()


def launching_run(user_run: Callable[..., Any]) -> Callable[..., Any]:
    """Lightning's subclass API: a ``run`` defined on a ``Fabric`` subclass launches when called.

    ``MyFabric(...).run(*args)`` calls ``fabric.launch()`` with the user's ``run``: each
    process the strategy starts runs it and returns its result. Called once the run is
    launched (``super().run()``, or after ``fabric.launch()``), it runs directly.
    """

    @functools.wraps(user_run)
    def run(fabric: Any, *args: Any, **kwargs: Any) -> Any:
        if fabric._lifecycle.launched:
            return user_run(fabric, *args, **kwargs)
        return fabric.launch(_call_subclass_run, *args, **kwargs)

    return run


def _call_subclass_run(fabric: Any, *args: Any, **kwargs: Any) -> Any:
    # Module level, so that spawned processes can unpickle it; the most derived run's
    # wrapper (see launching_run) holds the user's function.
    return type(fabric).run.__wrapped__(fabric, *args, **kwargs)


def teardown_at_exit(fabric: Any) -> None:
    """Registered with ``atexit`` for every Fabric: its teardown, with the run's outcome."""
    # A strong reference on purpose: a Fabric made inside a function must still flush its
    # loggers and release its processes when the interpreter exits.
    try:
        fabric._teardown("failed" if _errors.state["failed"] else "success")
    except Exception as err:  # at exit, a failing teardown must not hide the real outcome
        _log.warning("teardown at exit failed", error=repr(err))
