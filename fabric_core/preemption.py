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
callback, waits for the others, and ends. A previous Python handler of the signal (such as
``SLURMEnvironment``'s requeue on ``SIGUSR1``) runs after the checkpoint, so the job is
requeued only once it is saved. A second signal before the check ends the process at once;
the same signal again within :data:`COPY_SECONDS` is a copy of the first (SLURM signals
every process of a job step, and torchrun passes the signal on to its workers as well).

**The exit code.** Every rank ends with :class:`Preempted` (a ``SystemExit``) and the same
code: 128 + the agreed signal's number by default (143 for ``SIGTERM``, 138 for
``SIGUSR1``), what a shell reports for a process the signal ended. An interrupted job must
not look finished: Kubernetes (``restartPolicy: OnFailure``, a Job's ``podFailurePolicy``),
torchrun's elastic agent, SLURM (``RequeueExit``) and spot-instance managers restart or
requeue on a non-zero code and take 0 for "done". Fabric's own launchers (``ddp``,
``ddp_spawn``, ``fabric run``) know the code for a preemption, not a crash: each rank
leaves a record in ``FABRIC_ERROR_DIR`` (:func:`~fabric_core.strategies.launchers._errors.record_preemption`),
so the launcher does not report it or stop the other ranks, and the launching process ends
with the same code. Global rank 0 prints one line saying what happened. ``exit_code=0``
ends with 0 instead (a scheduler then sees a finished job); ``exit_code=None`` goes on, and
the loop stops itself (:attr:`Preemption.preempted`).

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
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, Literal

from fabric_core import _logging

__all__ = ["Preempted", "Preemption"]

_log = _logging.get_logger(__name__)
#: How many checks ahead of the announcing rank the stop step is (see the module's notes).
MARGIN = 2
#: The same signal again within this many seconds is a copy of the first, not a second one:
#: SLURM signals every process of a job step, and torchrun also passes it on to its workers.
COPY_SECONDS = 2.0
_instances = itertools.count()  # created in the same order on every rank: one store key each


class Preempted(SystemExit):
    """How :class:`Preemption` ends a process after the checkpoint: ``SystemExit`` with the agreed code.

    :param code: the exit code (``SystemExit.code``).
    :param sig: the signal the ranks agreed on.
    :param step: the check at which the checkpoint callback ran.
    """

    def __init__(self, code: int, sig: signal.Signals, step: int) -> None:
        super().__init__(code)
        self.signal = sig
        self.step = step


class Preemption:
    """Run ``on_preempt`` on every rank at the same step when a preemption signal arrives, then end the process.

    :param fabric: the launched Fabric; the object adds itself to ``fabric.callbacks``.
    :param on_preempt: what to run on every rank, typically ``lambda: fabric.save(path, state)``.
    :param signals: the signals that mean preemption; ``SIGTERM`` and ``SIGUSR1`` (SLURM's
        requeue signal; the ``requeue_signal`` of a ``SLURMEnvironment`` in use) when ``None``.
    :param every_n_steps: check after every n-th optimizer step (with several processes,
        one request to the process group's store per check).
    :param exit_code: the code every process ends with after ``on_preempt`` (by raising
        :class:`Preempted`): ``"signal"`` for 128 + the signal's number (143 for ``SIGTERM``),
        an int from 0 to 255, or ``None`` to go on (:attr:`preempted` then tells the loop to stop).
    """

    def __init__(
        self,
        fabric: Any,
        on_preempt: Callable[[], Any],
        *,
        signals: Sequence[signal.Signals] | None = None,
        every_n_steps: int = 1,
        exit_code: int | Literal["signal"] | None = "signal",
    ) -> None:
        if not callable(on_preempt):
            raise TypeError(f"Preemption(on_preempt={on_preempt!r}): expected a function to call, such as a save.")
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"Preemption(every_n_steps={every_n_steps!r}): expected an int of 1 or more.")
        if exit_code not in ("signal", None) and (
            isinstance(exit_code, bool) or not isinstance(exit_code, int) or not 0 <= exit_code <= 255
        ):
            raise ValueError(
                f"Preemption(exit_code={exit_code!r}): expected 'signal' (128 + the signal's number, the default), "
                "an int from 0 to 255 (what a process can exit with), or None to go on after the checkpoint."
            )
        self.fabric = fabric
        self.on_preempt = on_preempt
        self.signals: tuple[signal.Signals, ...] = tuple(signals) if signals is not None else _default_signals(fabric)
        self.every_n_steps = every_n_steps
        self.exit_code = exit_code
        #: the signal received on this process and not yet acted on, else ``None``
        self.received: signal.Signals | None = None
        self._received_at = 0.0
        self._ending = False  # between the checkpoint and SystemExit
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
        if self._ending:
            return  # after the checkpoint: the scheduler ending the job (SLURM after a requeue) changes nothing
        if self.received is not None:
            if sig is self.received and time.monotonic() - self._received_at < COPY_SECONDS:
                return  # the same signal passed on by a launcher (torchrun) that got it too
            _log.warning("second preemption signal: ending now, without a checkpoint", signal=sig.name)
            self.close()
            raise SystemExit(128 + signum)
        self.received, self._received_at = sig, time.monotonic()
        _log.warning("preemption signal received: every rank checkpoints after the next step", signal=sig.name)

    def on_after_optimizer_step(self, **_: Any) -> None:
        """Fabric calls this after each ``optimizer.step()``; checks every ``every_n_steps`` steps."""
        self._steps += 1
        if self._steps % self.every_n_steps == 0:
            self.check()

    def check(self) -> bool:
        """Agree across ranks whether any was signalled; if so, run the checkpoint callback everywhere (then end).

        Every rank must call it at the same points: the ranks agree on the step by counting checks.
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
        code = 128 + int(signalled) if self.exit_code == "signal" else self.exit_code
        self._ending = code is not None
        previous = self._previous.get(signalled)
        if callable(previous):
            previous(int(signalled), None)  # for example SLURM's requeue, now that the checkpoint exists
        if self.fabric.global_rank == 0:
            _say(self._summary(signalled, code, previous))
        if code is None:
            return True
        from fabric_core.strategies.launchers._errors import PreemptedRank, record_preemption

        # The record first: a launcher that sees this exit code must find it (see the module's notes).
        record_preemption(PreemptedRank(self.fabric.global_rank, signalled.name, self._steps, code))
        self.close()
        sys.stdout.flush()
        raise Preempted(code, signalled, self._steps)

    def _summary(self, sig: signal.Signals, code: int | None, previous: Any) -> str:
        """The line rank 0 prints: what happened and why the process ends with this code."""
        ranks = f"all {self.fabric.world_size} ranks" if self.fabric.world_size > 1 else "the one process"
        line = f"fabric: preempted by {sig.name} at step {self._steps}: checkpoint callback ran on {ranks}"
        if callable(previous):
            name = getattr(previous, "__qualname__", repr(previous))
            line += f", then the {sig.name} handler that was there before ({name})"
        if code is None:
            return line + "; going on (exit_code=None): stop the loop when preemption.preempted is True"
        if code == 128 + int(sig):
            return line + f"; exiting with {code} (128 + {sig.name}) so the scheduler requeues the job"
        if code == 0:
            return line + "; exiting with 0 (exit_code=0): a scheduler takes this for a finished job, not requeued"
        return line + f"; exiting with {code} (exit_code={code})"

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


def _say(line: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


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
