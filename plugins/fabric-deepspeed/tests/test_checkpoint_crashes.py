"""DeepSpeed directory saves killed at random moments, and exactly between the two renames of the swap.

Importing DeepSpeed costs seconds, a save of a small model a fraction of one, so one *fork
server* imports everything once and forks one saving process per trial (fabric-core's own
crash tests do the same for single files and sharded directories). The child saves the same
path in a loop, every weight holding the step, and prints ``READY <leftovers>`` after its
first save (none may be left: that save removed what the previous, killed child left). The
test kills it with SIGKILL after a random delay; the path, or what a load recovers, must be
a whole checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from fabric_core.strategies import manifest, staging

from fabric_deepspeed.checkpoint import check_safe

TRIALS = 20

SERVER = """
import json, os, socket, sys
sys.stderr = sys.stdout
from pathlib import Path
import torch
from torch import nn
from fabric_core import Fabric
from fabric_core.strategies import staging
from fabric_deepspeed.strategy import DeepSpeedStrategy

def save_loop():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        os.environ["MASTER_PORT"] = str(probe.getsockname()[1])
    fabric = Fabric(accelerator="cpu", devices=1, strategy=DeepSpeedStrategy(stage=2))
    fabric.launch()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.Linear(512, 256))
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.1))
    step = 0
    while True:
        step += 1
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(float(step))
        fabric.save("ckpt", {"model": model, "optimizer": optimizer, "step": step})
        if step == 1:
            print("READY " + json.dumps([e.location.name for e in staging.leftovers(Path("ckpt"))]), flush=True)

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
    print(f"CHILD {pid}", flush=True)
    _, status = os.waitpid(pid, 0)
    print(f"EXIT {status}", flush=True)
"""


def _line(process: subprocess.Popen[str], prefix: str) -> str:
    assert process.stdout is not None
    seen = []
    while True:
        line = process.stdout.readline()
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
        seen.append(line)
        if not line or (line.startswith("EXIT ") and prefix != "EXIT "):
            raise AssertionError(f"the saving process ended before printing {prefix!r}:\n{''.join(seen)}")


def _check(path: Path) -> str:
    """The checkpoint at ``path`` (recovered first if a kill left it missing) is whole; say how it was found."""
    interrupted = [entry for entry in staging.leftovers(path) if entry.kind != "lock"]
    how = "in place, a save interrupted" if interrupted else "in place, between saves"
    if not path.exists():
        recovered = staging.recover(path)
        assert recovered is not None, sorted(p.name for p in path.parent.iterdir())
        how = f"recovered from {recovered.name}"
    manifest.verify(path)
    states = path / "checkpoint" / "mp_rank_00_model_states.pt"
    check_safe([states])
    saved = torch.load(states, map_location="cpu", weights_only=False)  # checked above: no code
    step = saved["step"]
    for name, tensor in saved["module"].items():
        assert torch.all(tensor == float(step)), f"{name} holds {tensor.flatten()[:3]} at step {step}"
    return how


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_deepspeed_save_killed_at_random_moments_leaves_a_complete_checkpoint(
    tmp_path: Path, clean_env: Callable[..., dict[str, str]]
) -> None:
    (tmp_path / "fork_server.py").write_text(SERVER)
    process = subprocess.Popen(
        [sys.executable, "fork_server.py"],
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdin is not None
    rng = random.Random(13)
    outcomes: dict[str, int] = {}
    try:
        for trial in range(TRIALS):
            process.stdin.write("trial\n")
            process.stdin.flush()
            pid = int(_line(process, "CHILD "))
            leftovers = json.loads(_line(process, "READY "))
            assert leftovers == [], (trial, leftovers)
            time.sleep(rng.uniform(0, 0.3))
            os.kill(pid, signal.SIGKILL)
            _line(process, "EXIT ")
            how = _check(tmp_path / "ckpt")
            outcomes[how] = outcomes.get(how, 0) + 1
    finally:
        process.stdin.close()
        process.wait(timeout=60)
    print(f"{TRIALS} kills of a DeepSpeed save: {outcomes}")


CRASH_BETWEEN_RENAMES = """
import torch
from torch import nn
from fabric_core import Fabric
from fabric_deepspeed.strategy import DeepSpeedStrategy

fabric = Fabric(accelerator="cpu", devices=1, strategy=DeepSpeedStrategy(stage=2))
fabric.launch()
layer = nn.Linear(4, 4)
model, optimizer = fabric.setup(layer, torch.optim.SGD(layer.parameters(), lr=0.1))
for step in (1, 2):
    with torch.no_grad():
        model.weight.fill_(float(step))
    fabric.save("ckpt", {"model": model, "step": step})
    print("SAVED", step, flush=True)
"""

LOAD = """
import warnings
from pathlib import Path
import torch
from torch import nn
from fabric_core import Fabric
from fabric_core.strategies import staging
from fabric_deepspeed.strategy import DeepSpeedStrategy

fabric = Fabric(accelerator="cpu", devices=1, strategy=DeepSpeedStrategy(stage=2))
fabric.launch()
layer = nn.Linear(4, 4)
model, optimizer = fabric.setup(layer, torch.optim.SGD(layer.parameters(), lr=0.1))
state = {"model": model, "step": 0}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fabric.load("ckpt", state)
for warning in caught:
    if "interrupted" in str(warning.message):
        print("WARNING", warning.message, flush=True)
print("STEP", state["step"], float(model.weight[0, 0]), flush=True)
fabric.save("ckpt", state)
print("LEFTOVERS", sorted(entry.location.name for entry in staging.leftovers(Path("ckpt"))), flush=True)
"""


@pytest.mark.timeout(300)
def test_a_crash_between_the_two_renames_is_recovered_by_the_next_load(
    tmp_path: Path, run_script: Callable[..., Any]
) -> None:
    run = run_script(CRASH_BETWEEN_RENAMES, env={staging.CRASH_BETWEEN_RENAMES: "1"})
    assert run.returncode == 137, run.output
    assert not (tmp_path / "ckpt").exists()
    assert sorted(entry.kind for entry in staging.leftovers(tmp_path / "ckpt")) == ["lock", "retired", "staging"]

    run = run_script(LOAD)
    output = run.output
    assert run.returncode == 0, output
    assert "WARNING fabric.load('ckpt'): the checkpoint was missing because a save was interrupted" in output
    assert "the newest complete copy, '.ckpt.fabric-staging-" in output
    assert "STEP 2 2.0" in output
    assert "LEFTOVERS []" in output
