"""Preemption: SIGTERM (or SLURM's requeue signal) to one process; every rank checkpoints at the same step and ends.

Real processes: the training script runs (one process, or two DDP ranks over gloo started by
``fabric.launch()``) and prints each step; the test sends the signal to the process it
chooses (rank 1, or the launcher, which is rank 0) while it trains, waits for the processes
to end and checks what every rank printed and what the checkpoint holds.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from fabric_core import Fabric
from fabric_core.preemption import Preemption
from tests.helpers.processes import ROOT

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")

SCRIPT = """
import os, sys, time
import torch
from torch import nn
from fabric_core import Fabric
from fabric_core.preemption import Preemption

devices = int(sys.argv[1])
fabric = Fabric(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto")
fabric.launch()
torch.manual_seed(0)
layer = nn.Linear(8, 1)
model, optimizer = fabric.setup(layer, torch.optim.SGD(layer.parameters(), lr=0.0))
state = {"model": model, "optimizer": optimizer, "step": 0}

def say(line):  # one write per line: two ranks share the pipe, and print() writes the newline apart
    os.write(1, (line + "\\n").encode())

def save():
    say(f"SAVING rank={fabric.global_rank} step={state['step']}")
    fabric.save("preempted.ckpt", state)

Preemption(fabric, save, exit_code=int(sys.argv[2]))
with open(f"pid-{fabric.global_rank}.partial", "w") as file:  # whole lines of two ranks may interleave
    file.write(str(os.getpid()))
os.replace(f"pid-{fabric.global_rank}.partial", f"pid-{fabric.global_rank}")
for step in range(1, 100000):
    loss = model(torch.randn(4, 8)).sum()
    fabric.backward(loss)
    state["step"] = step  # the step the checkpoint after this optimizer step holds
    optimizer.step()
    optimizer.zero_grad()
    if fabric.global_rank == 0 and step % 10 == 0:
        say(f"STEP {step}")
    time.sleep(0.002)
say("NOT PREEMPTED")
"""


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FABRIC_TEST_")}
    for variable in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR", "NODE_RANK"):
        env.pop(variable, None)
    return {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "FABRIC_DISABLE_PLUGIN_AUTOLOAD": "1"}


def _run_and_signal(tmp_path: Path, devices: int, target_rank: int, sig: signal.Signals) -> tuple[int, str]:
    """Start the script, send ``sig`` to ``target_rank``'s process once it trains, return (exit code, output)."""
    (tmp_path / "script.py").write_text(SCRIPT)
    process = subprocess.Popen(
        [sys.executable, "script.py", str(devices), "0" if devices > 1 else "143"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    sent = False
    deadline = time.monotonic() + 120
    pid_file = tmp_path / f"pid-{target_rank}"
    for line in process.stdout:
        lines.append(line)
        step = re.search(r"STEP (\d+)", line)
        if not sent and step is not None and int(step[1]) >= 30 and pid_file.exists():
            os.kill(int(pid_file.read_text()), sig)
            sent = True
        if time.monotonic() > deadline:
            process.kill()
            break
    code = process.wait(timeout=60)
    return code, "".join(lines)


def _saved_steps(output: str) -> dict[int, int]:
    return {int(rank): int(step) for rank, step in re.findall(r"SAVING rank=(\d+) step=(\d+)", output)}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("target_rank", [1, 0], ids=["sigterm-to-rank-1", "sigterm-to-the-launcher"])
def test_two_ddp_ranks_checkpoint_at_the_same_step_and_end(tmp_path: Path, target_rank: int) -> None:
    code, output = _run_and_signal(tmp_path, devices=2, target_rank=target_rank, sig=signal.SIGTERM)
    assert code == 0, output  # a clean, checkpointed stop (exit_code=0, the default)
    saved = _saved_steps(output)
    assert sorted(saved) == [0, 1], output  # every rank ran the callback...
    assert saved[0] == saved[1] >= 30, output  # ...at the same step, after the signal
    assert "NOT PREEMPTED" not in output
    checkpoint = torch.load(tmp_path / "preempted.ckpt", weights_only=True)
    assert checkpoint["step"] == saved[0]
    nn.Linear(8, 1).load_state_dict(checkpoint["model"])


@pytest.mark.timeout(120)
def test_one_process_checkpoints_on_slurms_requeue_signal(tmp_path: Path) -> None:
    code, output = _run_and_signal(tmp_path, devices=1, target_rank=0, sig=signal.SIGUSR1)
    assert code == 143, output  # the script asks for exit_code=143
    saved = _saved_steps(output)
    assert list(saved) == [0] and saved[0] >= 30, output
    assert torch.load(tmp_path / "preempted.ckpt", weights_only=True)["step"] == saved[0]


def test_in_process_the_callback_runs_at_the_next_step_and_handlers_are_put_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    fabric = Fabric(accelerator="cpu", devices=1)
    layer = nn.Linear(2, 1)
    _, optimizer = fabric.setup(layer, torch.optim.SGD(layer.parameters(), lr=0.1))
    calls: list[int] = []
    preemption = Preemption(fabric, lambda: calls.append(len(calls)), exit_code=None, every_n_steps=2)
    assert preemption in fabric.callbacks and signal.getsignal(signal.SIGTERM) is not before
    try:
        optimizer.step()
        os.kill(os.getpid(), signal.SIGTERM)  # recorded, not acted on: the process goes on
        assert preemption.received is signal.SIGTERM and calls == []
        optimizer.step()  # the 2nd step: a check
        assert calls == [0] and preemption.preempted and preemption.preempted_at == 2
        optimizer.step()
        optimizer.step()
        assert calls == [0]  # once per signal
    finally:
        preemption.close()
    assert signal.getsignal(signal.SIGTERM) is before and preemption not in fabric.callbacks


def test_bad_arguments_are_named() -> None:
    fabric = Fabric(accelerator="cpu", devices=1)
    with pytest.raises(TypeError, match=r"Preemption\(on_preempt='save'\): expected a function"):
        Preemption(fabric, "save")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Preemption\(every_n_steps=0\): expected an int of 1 or more"):
        Preemption(fabric, lambda: None, every_n_steps=0)
