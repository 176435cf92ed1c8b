"""Running the conformance checks in a real training script, on N processes, with any registered strategy."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from fabric_core.testing.environ import clean_environment

__all__ = ["LAUNCHERS", "launcher_command", "run_training_script"]

_SCRIPT = """
import sys
from fabric_core import Fabric
from fabric_core.testing.checks import check_checkpoint_round_trip, check_collectives, check_training_reduces_loss

strategy, devices, precision, checkpoint, accelerator = sys.argv[1:6]
fabric = Fabric(accelerator=accelerator, devices=int(devices), strategy=strategy, precision=precision)
fabric.launch()
check_collectives(fabric)
check_training_reduces_loss(fabric)
check_checkpoint_round_trip(fabric, checkpoint)
print(f"CONFORMANCE OK rank {fabric.global_rank}", flush=True)
"""

#: The launchers :func:`run_training_script` knows by name.
LAUNCHERS = ("torchrun", "fabric")


def launcher_command(launcher: str | Sequence[str], devices: int, accelerator: str = "cpu") -> list[str]:
    """The command that starts ``devices`` processes of a script appended to it.

    :param launcher: ``"torchrun"`` (``python -m torch.distributed.run --standalone``, which
        picks a free port), ``"fabric"`` (``fabric run``), or a command of your own as a
        list (``["srun", "--ntasks=2"]``), used as given.
    :raises ValueError: for a name not in :data:`LAUNCHERS`.
    """
    if not isinstance(launcher, str):
        return list(launcher)
    if launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={devices}"]
    if launcher == "fabric":
        from fabric_core.environments.local import find_free_port

        run = [sys.executable, "-m", "fabric_core.cli", "run"]
        return [*run, f"--accelerator={accelerator}", f"--devices={devices}", f"--main-port={find_free_port()}"]
    raise ValueError(
        f"launcher={launcher!r} is not one the conformance run knows: use one of {', '.join(LAUNCHERS)}, "
        "or pass the command itself as a list (for example ['srun', '--ntasks=2'])."
    )


def run_training_script(
    strategy: str,
    devices: int,
    folder: Path,
    precision: str = "32-true",
    timeout: float = 300,
    env: dict[str, str] | None = None,
    launcher: str | Sequence[str] | None = None,
    accelerator: str = "cpu",
) -> str:
    """Run the conformance checks on ``devices`` real processes; return the output, raise on failure.

    Every rank checks the collectives (:func:`~fabric_core.testing.check_collectives`),
    trains a small model until its loss halves, and saves, loads and resumes a checkpoint
    in ``folder``.

    :param launcher: who starts the processes. ``None``: ``python script.py``, whose
        ``fabric.launch()`` starts the other ranks. Otherwise an external launcher, as
        :func:`launcher_command` reads it (``"torchrun"``, ``"fabric"``, or a command);
        the script's ``fabric.launch()`` then starts nothing.
    :param env: variables added last. The variables of a launcher that the test session
        itself may run under (torchrun's, SLURM's, a leftover ``MASTER_PORT``) are not
        passed on: they would make the script join that run instead.
    :raises AssertionError: with the whole output, when the run fails or a rank did not
        finish its checks.
    """
    script = folder / "conformance_script.py"
    script.write_text(textwrap.dedent(_SCRIPT), encoding="utf-8")
    prefix = [sys.executable] if launcher is None else launcher_command(launcher, devices, accelerator)
    arguments = [strategy, str(devices), precision, str(folder / "conformance_checkpoint"), accelerator]
    result = subprocess.run(
        [*prefix, str(script), *arguments],
        cwd=folder,
        env=clean_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output: str = result.stdout + result.stderr
    missing = [rank for rank in range(devices) if f"CONFORMANCE OK rank {rank}" not in output]
    if result.returncode != 0 or missing:
        how = "" if launcher is None else f" started by {' '.join(prefix)}"
        raise AssertionError(
            f"strategy={strategy!r} on {devices} processes{how} failed the conformance run "
            f"(exit status {result.returncode}; ranks that did not finish: {missing or 'none'}):\n{output}"
        )
    return output
