"""Checkpoint on preemption: on SIGTERM (or SLURM's requeue signal) every rank saves at the same step, then ends.

A scheduler that preempts a job (SLURM, Kubernetes, a spot instance going away) sends
``SIGTERM``, or the signal chosen with ``#SBATCH --signal=SIGUSR1@90``, and kills the job a
while later. Often only some processes get it: the launcher, one node. A checkpoint then
needs every rank (a sharded or collective save), at the same step.

.. code-block:: python

    fabric = Fabric(...)
    fabric.launch()
    model, optimizer = fabric.setup(model, optimizer)
    state = {"model": model, "optimizer": optimizer, "step": 0}
    Preemption(fabric, lambda: fabric.save("preempted.ckpt", state))

    for batch in loader:  # unchanged: the check runs after each optimizer.step()
        ...
        optimizer.step()
        state["step"] += 1

**How.** :class:`Preemption` installs a handler for each signal that only records it. After
every ``every_n_steps``-th ``optimizer.step()`` (it is a callback with
``on_after_optimizer_step``; call :meth:`Preemption.check` yourself at other boundaries) it
checks. A signalled rank announces a stop step, two checks ahead of its own, in the process
group's key-value store (``compare_set``: the first announcement wins); every rank looks for
the announcement at each check (``store.check``, one small request to the store, no
collective and no GPU synchronisation) and, at the announced step, runs the checkpoint
callback, waits for the others, and ends with ``SystemExit(exit_code)``: 0 by default, a
clean stop with a checkpoint, because a launcher (Fabric's own, torchrun) takes a rank that
exits non-zero for a crash and tears the others down, possibly mid-save. Pass
``exit_code=143`` (128 + SIGTERM) where the scheduler needs to see the signal, or
``exit_code=None`` to go on and stop the loop yourself (:attr:`Preemption.preempted`). A
previous Python handler of the signal (such as ``SLURMEnvironment``'s requeue on
``SIGUSR1``) runs after the checkpoint, so the job is requeued only once it is saved. A
second signal before the check ends the process at once.

Two checks ahead is enough when every step has a collective (the gradient all-reduce of
DDP, FSDP's gathers): no rank can then run more than one step ahead of another. A rank that
finds the announced step already behind it (a loop without collectives, or ranks that check
a different number of times) raises ``RuntimeError`` saying so.

**Cost.** Nothing when no :class:`Preemption` exists (Fabric's step does not look for it).
With one: Fabric calls its callbacks around each step (about 20 us), plus one store request
per check with several processes (about 50 us on a loaded 2-core CPU machine, against
600 us for a one-element gloo ``all_reduce``, which would also synchronise a GPU every step);
``every_n_steps`` spreads it.
"""

from __future__ import annotations

import itertools
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from fabric_core import _logging

__all__ = ["Preemption"]

_log = _logging.get_logger(__name__)
#: How many checks ahead of the announcing rank the stop step is (see the module's notes).
MARGIN = 2
_instances = itertools.count()  # created in the same order on every rank: one store key each


class Preemption:
    """Run ``on_preempt`` on every rank at the same step when a preemption signal arrives, then end the process.

    :param fabric: the launched Fabric; the object adds itself to ``fabric.callbacks``.
    :param on_preempt: what to run on every rank, typically ``lambda: fabric.save(path, state)``.
    :param signals: the signals that mean preemption; ``SIGTERM`` and ``SIGUSR1`` (SLURM's
        requeue signal; the ``requeue_signal`` of a ``SLURMEnvironment`` in use) when ``None``.
    :param every_n_steps: check after every n-th optimizer step (the agreement is one
        collective per check).
    :param exit_code: end every process after ``on_preempt`` with ``SystemExit(exit_code)``;
        ``None`` to go on (:attr:`preempted` then tells the loop to stop).
    """

    def __init__(
        self,
        fabric: Any,
        on_preempt: Callable[[], Any],
        *,
        signals: Sequence[signal.Signals] | None = None,
        every_n_steps: int = 1,
        exit_code: int | None = 0,
    ) -> None:
        if not callable(on_preempt):
            raise TypeError(f"Preemption(on_preempt={on_preempt!r}): expected a function to call, such as a save.")
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"Preemption(every_n_steps={every_n_steps!r}): expected an int of 1 or more.")
        self.fabric = fabric
        self.on_preempt = on_preempt
        self.signals: tuple[signal.Signals, ...] = tuple(signals) if signals is not None else _default_signals(fabric)
        self.every_n_steps = every_n_steps
        self.exit_code = exit_code
        #: the signal received on this process and not yet acted on, else ``None``
        self.received: signal.Signals | None = None
        #: the step count at which the checkpoint callback ran, else ``None``
        self.preempted_at: int | None = None
        self._steps = 0
        self._key = f"fabric_core/preemption/{next(_instances)}"
        self._generation = 0  # a new key after each handled preemption (with exit_code=None)
        self._stop: tuple[int, signal.Signals] | None = None  # the announced (step, signal)
        self._previous: dict[signal.Signals, Any] = {}
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._record)
        fabric.callbacks.append(self)

    @property
    def preempted(self) -> bool:
        """Whether the checkpoint callback ran (only seen with ``exit_code=None``)."""
        return self.preempted_at is not None

    def _record(self, signum: int, frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        if self.received is not None:  # a second signal: the user (or scheduler) insists
            _log.warning("second preemption signal: ending now, without a checkpoint", signal=sig.name)
            self.close()
            raise SystemExit(128 + signum)
        self.received = sig
        _log.warning("preemption signal received: every rank checkpoints after the next step", signal=sig.name)

    def on_after_optimizer_step(self, **_: Any) -> None:
        """Fabric calls this after each ``optimizer.step()``; checks every ``every_n_steps`` steps."""
        self._steps += 1
        if self._steps % self.every_n_steps == 0:
            self.check()

    def check(self) -> bool:
        """Agree across ranks whether any was signalled; if so, run the checkpoint callback everywhere (then end).

        Every rank must call it at the same point (a collective when there are several).
        Returns ``True`` when the callback ran and ``exit_code`` is ``None``.
        """
        signalled = self._agreed_signal()
        if signalled is None:
            return False
        self.preempted_at = self._steps
        _log.warning("preempted: running the checkpoint callback", step=self._steps, signal=signalled.name)
        self.on_preempt()
        self.fabric.barrier("preemption")
        self.received, self._stop = None, None
        self._generation += 1
        previous = self._previous.get(signalled)
        if callable(previous):
            previous(int(signalled), None)  # for example SLURM's requeue, now that the checkpoint exists
        if self.exit_code is not None:
            self.close()
            sys.stdout.flush()
            raise SystemExit(self.exit_code)
        return True

    def _agreed_signal(self) -> signal.Signals | None:
        """The signal to act on now, at a step every rank agrees on; ``None`` to go on."""
        store = _store() if self.fabric.world_size > 1 else None
        if store is None:  # one process: act at once
            return self.received
        key = f"{self._key}/{self._generation}"
        if self._stop is None and self.received is not None:
            proposal = f"{self._steps + MARGIN}:{int(self.received)}"
            self._stop = _parse(store.compare_set(key, "", proposal))  # the first announcement wins
        elif self._stop is None and store.check([key]):
            self._stop = _parse(store.get(key))
        if self._stop is None or self._steps < self._stop[0]:
            return None
        if self._steps > self._stop[0]:
            raise RuntimeError(
                f"Preemption: rank {self.fabric.global_rank} saw the announced stop at check {self._stop[0]} only at "
                f"check {self._steps}, so the ranks cannot checkpoint together. Every rank must check at the same "
                "steps (Preemption checks after each optimizer.step(); call check() on every rank or on none), and "
                "the loop needs a collective each step (DDP and FSDP have one)."
            )
        return self._stop[1]

    def close(self) -> None:
        """Put back the signal handlers that were there before, and stop checking."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}
        if self in self.fabric.callbacks:
            self.fabric.callbacks.remove(self)

    def __repr__(self) -> str:
        names = ", ".join(sig.name for sig in self.signals)
        return f"Preemption(signals=[{names}], every_n_steps={self.every_n_steps})"


def _store() -> Any:
    """The default process group's key-value store, or ``None`` without a process group."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    return dist.distributed_c10d._get_default_store()


def _parse(value: bytes) -> tuple[int, signal.Signals]:
    step, signum = value.decode().split(":")
    return int(step), signal.Signals(int(signum))


def _default_signals(fabric: Any) -> tuple[signal.Signals, ...]:
    """SIGTERM, and the requeue signal of the SLURM environment in use (SIGUSR1 unless it says otherwise)."""
    found = [signal.SIGTERM]
    environment = getattr(getattr(fabric, "strategy", None), "cluster_environment", None)
    requeue = getattr(environment, "requeue_signal", None)
    if isinstance(requeue, signal.Signals) and getattr(environment, "auto_requeue", False):
        found.append(requeue)
    elif hasattr(signal, "SIGUSR1"):
        found.append(signal.SIGUSR1)
    return tuple(dict.fromkeys(found))
