"""Killing a saving process at random moments: a harness for crash-injection tests of checkpoint saves.

fabric-core's own crash tests and add-ons' (fabric-deepspeed's) use it; an add-on whose
strategy writes its own checkpoints can prove the same guarantee with it.

Importing torch (and DeepSpeed) costs seconds, a save of a small model milliseconds. So one
*fork server* imports everything once, then forks one saving process per trial: the child
saves the same path in a loop (step 1, 2, ...; every tensor of the model holds the step) and
prints ``READY <leftovers>`` after its first save, listing the hidden siblings it still
sees (there must be none: that first save removed what the previous, killed child left).
The test kills the child with SIGKILL after a random delay and inspects the path, for a
directory checkpoint with :func:`check_directory`.

.. code-block:: python

    with fork_server(tmp_path, prepare, setup, save, env) as server:
        outcomes = server.trials(20, seed=13, longest=0.3, check=lambda: check_directory(tmp_path / "ckpt"))
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: The fork server; ``{prepare}`` runs once, ``{setup}`` in each child, ``{save}`` for every step.
SERVER = """
import json, os, sys
sys.stderr = sys.stdout
from pathlib import Path
{prepare}

def save_loop():
    from fabric_core.strategies import staging
{setup}
    step = 0
    while True:
        step += 1
{save}
        if step == 1:
            names = [entry.location.name for entry in staging.leftovers(Path(PATH))]
            print("READY " + json.dumps(names), flush=True)

for command in sys.stdin:
    pid = os.fork()
    if pid == 0:
        try:
            save_loop()
        except BaseException:
            import traceback
            traceback.print_exc()
            sys.stdout.flush()
        os._exit(1)
    print(f"CHILD {{pid}}", flush=True)
    _, status = os.waitpid(pid, 0)
    print(f"EXIT {{status}}", flush=True)
"""


__all__ = ["ForkServer", "Trial", "check_directory", "fork_server"]


@dataclass
class Trial:
    """One killed saving process: what it saw after its first save and how long it ran after that."""

    leftovers_after_first_save: list[str]
    delay: float


@dataclass
class ForkServer:
    process: subprocess.Popen[str]

    def _line(self, prefix: str) -> str:
        """The rest of the next line starting with ``prefix``; fails when the child ends first, with its output."""
        assert self.process.stdout is not None
        seen = []
        while True:
            line = self.process.stdout.readline()
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
            seen.append(line)
            if not line or (line.startswith("EXIT ") and prefix != "EXIT "):
                raise AssertionError(f"the saving process ended before printing {prefix!r}:\n{''.join(seen)}")

    def trial(self, rng: random.Random, longest: float) -> Trial:
        """Fork a saving child, let it save for a random time up to ``longest`` seconds, SIGKILL it."""
        assert self.process.stdin is not None
        self.process.stdin.write("trial\n")
        self.process.stdin.flush()
        pid = int(self._line("CHILD "))
        leftovers = json.loads(self._line("READY "))
        delay = rng.uniform(0, longest)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        self._line("EXIT ")
        return Trial(leftovers, delay)

    def trials(self, count: int, seed: int, longest: float, check: Callable[[], str]) -> dict[str, int]:
        """Run ``count`` killed trials; after each, assert no leftovers survived the first save and run ``check``.

        Returns how often ``check`` returned each answer (how the checkpoint was found), for
        the test's summary line.
        """
        rng = random.Random(seed)
        outcomes: dict[str, int] = {}
        for number in range(count):
            outcome = self.trial(rng, longest)
            assert outcome.leftovers_after_first_save == [], (number, outcome)
            how = check()
            outcomes[how] = outcomes.get(how, 0) + 1
        return outcomes


@contextmanager
def fork_server(folder: Path, prepare: str, setup: str, save: str, env: dict[str, str]) -> Iterator[ForkServer]:
    """Start the fork server in ``folder``; ``PATH`` (the checkpoint path) must be set by ``prepare``."""
    source = SERVER.format(
        prepare=textwrap.dedent(prepare),
        setup=textwrap.indent(textwrap.dedent(setup), " " * 4),
        save=textwrap.indent(textwrap.dedent(save), " " * 8),
    )
    script = folder / "fork_server.py"
    script.write_text(source)
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=folder,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield ForkServer(process)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def check_directory(path: Path) -> str:
    """Assert that the directory checkpoint at ``path`` is whole after a kill; say how it was found.

    A kill between the two renames of a swap leaves ``path`` missing: the newest complete copy
    beside it is put back first (what ``fabric.load`` does). The directory must then match its
    manifest. Returns ``"in place, between saves"``, ``"in place, a save interrupted"`` or
    ``"recovered from <kind>"`` (``staging`` or ``retired``), for the test's summary line.
    """
    from fabric_core.strategies import manifest, staging

    interrupted = [entry for entry in staging.leftovers(path) if entry.kind != "lock"]
    how = "in place, a save interrupted" if interrupted else "in place, between saves"
    if not path.exists():
        recovered = staging.recover(path)
        assert recovered is not None, f"nothing complete beside {path}: {sorted(p.name for p in path.parent.iterdir())}"
        how = f"recovered from {recovered.name.split('.fabric-')[1].split('-')[0]}"
    manifest.verify(path)
    assert manifest.read_manifest(path) is not None, f"{path} has no manifest"
    return how
