"""``fabric run``: check the options, set ``FABRIC_*`` and start the processes through torchrun.

The command does three things, in this order:

1. It checks every option before any process starts: the script (or ``-m`` module) exists,
   the accelerator, strategy and precision names are registered (fabric-core's and those
   of loaded add-ons, with the same "did you mean" errors as ``Fabric(...)``), the node
   rank fits the number of nodes, and ``--devices`` makes sense for the accelerator. A
   problem is one line on stderr after the usage line, and exit status 2.
2. It sets ``FABRIC_ACCELERATOR``, ``FABRIC_STRATEGY`` and ``FABRIC_PRECISION`` when those
   options are given (and not ``auto``), and always ``FABRIC_DEVICES`` and
   ``FABRIC_NUM_NODES``. The ``Fabric()`` in the script reads them
   (:func:`fabric_core._connector._from_env`): they override its defaults, and a different
   non-default value in the code is an error.
3. It calls ``torch.distributed.run.main`` in this process (what the ``torchrun`` command
   runs) with ``--nproc_per_node``, ``--nnodes``, ``--node_rank``, ``--master_addr`` and
   ``--master_port``, so rendezvous, multi-node runs and worker shutdown are torchrun's.

Torchrun runs in-process rather than as a ``python -m torch.distributed.run`` child:

* the exit status is the failing worker's own (torchrun's command exits 1 for any
  failure; in-process, its ``ChildFailedError`` carries each worker's exit code);
* a signal sent to ``fabric run`` (Ctrl-C, ``kill``, a scheduler's SIGTERM) reaches
  torchrun's own handler directly, which passes it on to the workers and waits for them;
  with a child launcher we would have to forward signals, and a launcher killed in between
  would leave torchrun and its workers behind;
* there is one fewer Python interpreter to start.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The options that mean "let the script's Fabric(...) decide".
_AUTO = "auto"


class UsageError(Exception):
    """A bad option or target: printed after the usage line, exit status 2, nothing started."""


@dataclass(frozen=True)
class Plan:
    """What ``fabric run`` will do once the options are checked."""

    environment: dict[str, str]
    torchrun_args: list[str]
    processes: int
    main_port: int


# -- checking the options ---------------------------------------------------------------------------


def _check_target(args: argparse.Namespace) -> None:
    if args.script is None:
        if args.module:
            raise UsageError("-m needs a module name: fabric run [options] -m package.module [args]")
        raise UsageError("a script to run is required: fabric run [options] script.py [args]")
    if args.module:
        problem = _module_problem(args.script)
        if problem is not None:
            raise UsageError(f"-m {args.script}: {problem}")
        return
    path = Path(args.script)
    if not path.exists():
        raise UsageError(f"script {args.script!r} does not exist (relative paths start at {Path.cwd()})")
    if not path.is_file():
        raise UsageError(f"script {args.script!r} is not a file")


def _module_problem(name: str) -> str | None:
    """Why ``python -m name`` would not find ``name``; ``None`` when it would.

    Only finds the module; nothing is imported (a package's ``__init__`` is not run here),
    so ``fabric run`` has no side effects of the user's code.
    """
    parts = name.split(".")
    if not all(part.isidentifier() for part in parts):
        return "not a module name (expected dotted names such as package.module)"
    try:
        spec = importlib.util.find_spec(parts[0])
        if spec is None:
            # ``python -m`` in the worker puts the working directory first on sys.path.
            spec = importlib.machinery.PathFinder.find_spec(parts[0], [os.getcwd()])
    except (ImportError, ValueError) as err:
        return f"cannot look up {parts[0]!r}: {err}"
    if spec is None:
        return f"no module named {parts[0]!r} (looked in the working directory and on sys.path / PYTHONPATH)"
    for index in range(1, len(parts)):
        parent, full = ".".join(parts[:index]), ".".join(parts[: index + 1])
        locations = spec.submodule_search_locations
        if locations is None:
            return f"{parent!r} is a module, not a package, so it has no {parts[index]!r}"
        spec = importlib.machinery.PathFinder.find_spec(full, list(locations))
        if spec is None:
            return f"no module named {full!r} (package {parent!r} has no {parts[index]!r})"
    return None


def _check_numbers(args: argparse.Namespace) -> None:
    if args.num_nodes < 1:
        raise UsageError(f"--num-nodes={args.num_nodes}: expected 1 or more")
    if not 0 <= args.node_rank < args.num_nodes:
        raise UsageError(
            f"--node-rank={args.node_rank} is not valid with --num-nodes={args.num_nodes}: expected a node rank "
            f"from 0 to {args.num_nodes - 1}"
        )
    if not 1 <= args.main_port <= 65535:
        raise UsageError(f"--main-port={args.main_port}: expected a port from 1 to 65535")
    if not args.main_address.strip():
        raise UsageError("--main-address is empty: pass the host name or IP address of the node with rank 0")


def _is_auto(value: str | None) -> bool:
    return value is None or value.strip().lower() == _AUTO


def _check_names(args: argparse.Namespace) -> Any:
    """Look the names up in the registries; return the accelerator the processes are counted for."""
    from fabric_core._connector import _select_accelerator, normalize_precision
    from fabric_core._lookup import lookup

    try:
        accelerator = _select_accelerator(_AUTO if args.accelerator is None else args.accelerator.strip())
        if not _is_auto(args.strategy):
            lookup("strategy", args.strategy.strip().lower())
        if args.precision is not None:
            lookup("precision", normalize_precision(args.precision.strip()))
    except (ValueError, RuntimeError, TypeError) as err:
        raise UsageError(str(err)) from err
    return accelerator


def _count_processes(args: argparse.Namespace, accelerator: Any) -> int:
    """Processes per node: one per device, as the script's Fabric will count them."""
    from fabric_core._lookup import lookup

    try:
        devices = accelerator.parse_devices(args.devices.strip())
    except (ValueError, RuntimeError, TypeError) as err:
        raise UsageError(str(err)) from err
    if not _is_auto(args.strategy):
        # Registry data: a single-process strategy (dp, as in Lightning) drives every device of the
        # node from one process, unless it falls back to another strategy on this accelerator.
        entry = lookup("strategy", args.strategy.strip().lower())
        fallback = entry.fallback_on(accelerator.name)
        if fallback is not None:
            entry = lookup("strategy", fallback)
        if entry.single_process:
            return 1
    return len(devices)


def plan(args: argparse.Namespace) -> Plan:
    """Check every option and work out the environment and torchrun arguments; raise :class:`UsageError`."""
    _check_target(args)
    _check_numbers(args)
    accelerator = _check_names(args)
    if accelerator.fabric_run_refusal is not None:  # XLA devices start their processes with XLA's own launcher
        raise UsageError(f"--accelerator {args.accelerator.strip()}: {accelerator.fabric_run_refusal}")
    processes = _count_processes(args, accelerator)

    environment = {"FABRIC_DEVICES": args.devices.strip(), "FABRIC_NUM_NODES": str(args.num_nodes)}
    if not _is_auto(args.accelerator):
        environment["FABRIC_ACCELERATOR"] = args.accelerator.strip()
    if not _is_auto(args.strategy):
        environment["FABRIC_STRATEGY"] = args.strategy.strip()
    if args.precision is not None:
        environment["FABRIC_PRECISION"] = args.precision.strip()
    if "OMP_NUM_THREADS" not in os.environ:
        # What Lightning does: share the cores out, and spare users torchrun's warning about it.
        environment["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))

    torchrun_args = [
        f"--nproc_per_node={processes}",
        f"--nnodes={args.num_nodes}",
        f"--node_rank={args.node_rank}",
        f"--master_addr={args.main_address.strip()}",
        f"--master_port={args.main_port}",
    ]
    if args.module:
        torchrun_args.append("--module")
    torchrun_args += [args.script, *args.script_args]
    return Plan(environment=environment, torchrun_args=torchrun_args, processes=processes, main_port=args.main_port)


# -- launching --------------------------------------------------------------------------------------


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` (torchrun's workers inherit it) and restore it afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _exit_status(exitcode: int) -> int:
    """A worker's exit code as a shell would show it (killed by signal N: 128 + N)."""
    if exitcode < 0:
        return 128 - exitcode
    return exitcode or 1


def _report_failure(error: Any, error_dir: str) -> int:
    """Name the rank that failed first, show its traceback, and return its exit status.

    torchrun reports every rank that ended badly, with times in whole seconds, including
    the ranks it stopped itself with SIGTERM once one had failed; those are left out unless
    nothing else failed. The choice among the rest is
    :func:`~fabric_core.strategies.launchers._errors.root_cause`'s.
    """
    from fabric_core.strategies.launchers._errors import RankEnd, recorded_errors, recorded_preemptions, root_cause

    failures: dict[int, Any] = error.failures
    recorded = recorded_errors(error_dir)
    stopped_by_torchrun = -int(signal.SIGTERM)
    preempted = recorded_preemptions(error_dir)
    if preempted and all(rank in preempted or f.exitcode == stopped_by_torchrun for rank, f in failures.items()):
        # Preemption ended the ranks after the checkpoint: torchrun's "failed" above is that planned exit.
        first = preempted[min(preempted)]
        sys.stderr.write(
            f"fabric run: the ranks ended through preemption ({first.signal} at step {first.step}) after the "
            f"checkpoint, not through a failure (torchrun logs their exit code as one); exit status {first.code}.\n"
        )
        return first.code
    candidates = [rank for rank, failure in failures.items() if failure.exitcode != stopped_by_torchrun]
    ends = []
    for rank in candidates or list(failures):
        stamp, text = recorded.get(rank, (float(failures[rank].timestamp), None))
        ends.append(RankEnd(rank, stamp, code=failures[rank].exitcode, error=text))
    cause = root_cause(ends)
    rank = cause.rank if cause is not None else min(failures)
    failure = failures[rank]
    code = failure.exitcode
    how = f"was killed by {failure.signal_name()}" if code < 0 else f"exited with code {code}"
    lines = [f"\nfabric run: rank {rank} (local rank {failure.local_rank}, pid {failure.pid}) failed first: it {how}."]
    if rank in recorded:
        lines.append(recorded[rank][1].rstrip())
    others = sorted(set(failures) - {rank})
    if others:
        lines.append(f"fabric run: ranks that failed or were stopped after it: {', '.join(map(str, others))}.")
    lines.append("fabric run: all processes of this node were stopped.")
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
    return _exit_status(code)


def launch(run_plan: Plan) -> int:
    """Run torchrun in this process with ``run_plan``; the exit status of the run."""
    import torch.distributed.run as torchrun
    from torch.distributed import DistError
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError

    from fabric_core.strategies.launchers._errors import ERROR_DIR_VARIABLE, make_error_dir
    from fabric_core.strategies.launchers.watch import LAUNCHER_PID_VARIABLE

    error_dir = make_error_dir("fabric-run-errors-")
    # The workers watch this process: if it is killed outright, they stop too (no orphans).
    environment = {**run_plan.environment, ERROR_DIR_VARIABLE: error_dir, LAUNCHER_PID_VARIABLE: str(os.getpid())}
    try:
        with _environment(environment):
            torchrun.main(run_plan.torchrun_args)
    except ChildFailedError as error:
        return _report_failure(error, error_dir)
    except SignalException as error:
        from fabric_core.strategies.launchers._errors import recorded_preemptions

        if recorded_preemptions(error_dir):  # the workers' Preemption checkpointed on the signal torchrun passed on
            sys.stderr.write(f"fabric run: got {error.sigval.name}; the workers checkpointed and ended (preemption).\n")
        else:
            sys.stderr.write(f"fabric run: got {error.sigval.name}; the processes of this node were stopped.\n")
        return 128 + int(error.sigval)
    except (DistError, RendezvousError) as error:
        # The rendezvous failed before any worker started: a busy port, an unreachable main node, a timeout.
        message = " ".join(str(error).split())
        hint = ""
        if "EADDRINUSE" in message or "address already in use" in message:
            hint = f" Another program is using port {run_plan.main_port}: pass a free one with --main-port."
        sys.stderr.write(f"fabric run: torchrun could not start the run: {type(error).__name__}: {message}{hint}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("fabric run: interrupted.\n")
        return 128 + int(signal.SIGINT)
    finally:
        shutil.rmtree(error_dir, ignore_errors=True)
    return 0


def run_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``fabric run``: check, then launch. Problems with the options exit 2 before anything starts."""
    try:
        run_plan = plan(args)
    except UsageError as err:
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"{parser.prog}: error: {err}\n")
        return 2
    return launch(run_plan)
