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
from fabric_core.preemption import Preempted, Preemption
from fabric_core.testing import find_free_port
from tests.helpers.processes import ROOT

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")

SCRIPT = """
import os, sys, time
import torch
from torch import nn
from fabric_core import Fabric
from fabric_core.preemption import Preemption

devices, strategy, exit_code, failing_rank = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])

def say(line):  # one write per line: two ranks share the pipe, and print() writes the newline apart
    os.write(1, (line + "\\n").encode())

def train(fabric):
    torch.manual_seed(0)
    layer = nn.Linear(8, 1)
    model, optimizer = fabric.setup(layer, torch.optim.SGD(layer.parameters(), lr=0.0))
    state = {"model": model, "optimizer": optimizer, "step": 0}

    def save():
        say(f"SAVING rank={fabric.global_rank} step={state['step']}")
        if fabric.global_rank == failing_rank:
            raise ValueError("the checkpoint failed on purpose")
        fabric.save("preempted.ckpt", state)

    if exit_code != "no-preemption":
        Preemption(fabric, save, **({} if exit_code == "default" else {"exit_code": int(exit_code)}))
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

if __name__ == "__main__":
    fabric = Fabric(accelerator="cpu", devices=devices, strategy=strategy)
    if strategy == "ddp_spawn":
        fabric.launch(train)
    else:
        fabric.launch()
        train(fabric)
"""


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FABRIC_TEST_")}
    for variable in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR", "NODE_RANK"):
        env.pop(variable, None)
    return {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "FABRIC_DISABLE_PLUGIN_AUTOLOAD": "1"}


def _run_and_signal(
    tmp_path: Path,
    *args: str,
    target: str,
    sig: signal.Signals = signal.SIGTERM,
    command: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Run the script with ``args``; once it trains, send ``sig`` to ``target``; return (exit code, output).

    ``target`` is ``"rank-N"`` (the process of global rank N), ``"launcher"`` (the process
    the test started) or ``"group"`` (every process of the run, as SLURM signals a job step).
    ``command`` runs the script through a launcher (``fabric run ...``).
    """
    (tmp_path / "script.py").write_text(SCRIPT)
    process = subprocess.Popen(
        [*(command or (sys.executable,)), "script.py", *args],
        cwd=tmp_path,
        env={**_env(), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, for target="group"
    )
    assert process.stdout is not None
    lines: list[str] = []
    sent = False
    deadline = time.monotonic() + 120
    pid_file = tmp_path / (f"pid-{target.removeprefix('rank-')}" if target.startswith("rank-") else "pid-0")
    for line in process.stdout:
        lines.append(line)
        step = re.search(r"STEP (\d+)", line)
        if not sent and step is not None and int(step[1]) >= 30 and pid_file.exists():
            if target == "group":  # as SLURM does: every process, torchrun's workers in their own sessions too
                os.killpg(process.pid, sig)
                for pid in (int(path.read_text()) for path in tmp_path.glob("pid-*[0-9]")):
                    if os.getpgid(pid) != process.pid:
                        os.kill(pid, sig)
            else:
                os.kill(process.pid if target == "launcher" else int(pid_file.read_text()), sig)
            sent = True
        if time.monotonic() > deadline:
            process.kill()
            break
    code = process.wait(timeout=60)
    return code, "".join(lines)


def _saved_steps(output: str) -> dict[int, int]:
    return {int(rank): int(step) for rank, step in re.findall(r"SAVING rank=(\d+) step=(\d+)", output)}


def _assert_checkpointed_together(tmp_path: Path, output: str, ranks: int) -> int:
    """Every rank ran the callback at the same step, after the signal, and the checkpoint loads; the step."""
    saved = _saved_steps(output)
    assert sorted(saved) == list(range(ranks)), output
    assert len(set(saved.values())) == 1 and saved[0] >= 30, output
    assert "NOT PREEMPTED" not in output
    checkpoint = torch.load(tmp_path / "preempted.ckpt", weights_only=True)
    assert checkpoint["step"] == saved[0]
    nn.Linear(8, 1).load_state_dict(checkpoint["model"])
    return saved[0]


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("strategy", "target"),
    [("ddp", "rank-1"), ("ddp", "launcher"), ("ddp", "group"), ("ddp_spawn", "rank-1"), ("ddp_spawn", "launcher")],
    ids=[
        "ddp-to-rank-1",
        "ddp-to-the-launcher",
        "ddp-to-every-process",
        "ddp_spawn-to-rank-1",
        "ddp_spawn-to-the-launcher",
    ],
)
def test_two_ddp_ranks_checkpoint_at_the_same_step_and_the_launcher_exits_143(
    tmp_path: Path, strategy: str, target: str
) -> None:
    code, output = _run_and_signal(tmp_path, "2", strategy, "default", "-1", target=target)
    assert code == 128 + signal.SIGTERM, output  # the default: what a process the signal ended reports
    step = _assert_checkpointed_together(tmp_path, output, ranks=2)
    expected = (
        f"fabric: preempted by SIGTERM at step {step}: checkpoint callback ran on all 2 ranks; exiting with 143 "
        "(128 + SIGTERM) so the scheduler requeues the job"
    )
    assert output.count(expected) == 1, output  # one line, from rank 0
    assert "failed first" not in output and "exited with code" not in output, output


@pytest.mark.timeout(180)
def test_ddp_spawn_without_preemption_ends_on_the_sigterm_it_passed_on(tmp_path: Path) -> None:
    code, output = _run_and_signal(tmp_path, "2", "ddp_spawn", "no-preemption", "-1", target="launcher")
    assert code == 128 + signal.SIGTERM, output  # as the launching process would have ended on the signal
    assert "fabric: got SIGTERM and passed it on to the processes of the run; process " in output, output
    assert "without a Preemption checkpoint" in output and not (tmp_path / "preempted.ckpt").exists()


@pytest.mark.timeout(180)
def test_exit_code_0_still_ends_every_rank_with_0(tmp_path: Path) -> None:
    code, output = _run_and_signal(tmp_path, "2", "ddp", "0", "-1", target="rank-1")
    assert code == 0, output
    step = _assert_checkpointed_together(tmp_path, output, ranks=2)
    assert f"at step {step}: checkpoint callback ran on all 2 ranks; exiting with 0 (exit_code=0)" in output, output
    assert "failed first" not in output


@pytest.mark.timeout(180)
@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_a_rank_that_fails_in_the_callback_is_reported_as_a_failure(tmp_path: Path, strategy: str) -> None:
    code, output = _run_and_signal(tmp_path, "2", strategy, "default", "1", target="rank-1")
    assert code not in (0, 128 + signal.SIGTERM), output
    assert "ValueError: the checkpoint failed on purpose" in output, output
    if strategy == "ddp":
        assert "fabric: rank 1 failed first: it raised an exception" in output, output
    else:
        assert "A process of the run failed" in output, output
    assert "fabric: preempted by" not in output


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("exit_code", "expected"), [("default", 128 + signal.SIGUSR1), ("143", 143)], ids=["default", "exit_code=143"]
)
def test_one_process_checkpoints_on_slurms_requeue_signal(tmp_path: Path, exit_code: str, expected: int) -> None:
    code, output = _run_and_signal(tmp_path, "1", "auto", exit_code, "-1", target="rank-0", sig=signal.SIGUSR1)
    assert code == expected, output  # 138 = 128 + SIGUSR1 by default
    step = _assert_checkpointed_together(tmp_path, output, ranks=1)
    assert f"fabric: preempted by SIGUSR1 at step {step}: checkpoint callback ran on the one process" in output


@pytest.mark.timeout(180)
@pytest.mark.parametrize("target", ["rank-1", "launcher", "group"])
def test_under_fabric_run_the_preempted_run_exits_143_and_is_no_failure(tmp_path: Path, target: str) -> None:
    # fabric run runs torchrun: SIGTERM to a worker, or to fabric run itself (torchrun passes it on).
    port = str(find_free_port())
    fabric_run = (sys.executable, "-m", "fabric_core", "run", "--accelerator=cpu", "--devices=2", f"--main-port={port}")
    code, output = _run_and_signal(tmp_path, "2", "ddp", "default", "-1", target=target, command=fabric_run)
    assert code == 128 + signal.SIGTERM, output
    step = _assert_checkpointed_together(tmp_path, output, ranks=2)
    assert f"fabric: preempted by SIGTERM at step {step}: checkpoint callback ran on all 2 ranks" in output
    assert "failed first" not in output, output
    if target == "rank-1":
        assert f"fabric run: the ranks ended through preemption (SIGTERM at step {step}) after the checkpoint" in output
    else:  # torchrun got the signal and passed it on to the workers
        assert "fabric run: got SIGTERM; the workers checkpointed and ended (preemption)." in output, output


@pytest.mark.timeout(180)
def test_under_fabric_run_slurms_requeue_signal_reaches_the_workers_when_torchrun_handles_it(tmp_path: Path) -> None:
    # torchrun passes on only the signals it handles; without SIGUSR1 among them, the signal would end fabric run.
    port = str(find_free_port())
    fabric_run = (sys.executable, "-m", "fabric_core", "run", "--accelerator=cpu", "--devices=2", f"--main-port={port}")
    handled = {"PET_SIGNALS_TO_HANDLE": "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"}
    code, output = _run_and_signal(
        tmp_path, "2", "ddp", "default", "-1", target="launcher", sig=signal.SIGUSR1, command=fabric_run, env=handled
    )
    assert code == 128 + signal.SIGUSR1, output
    step = _assert_checkpointed_together(tmp_path, output, ranks=2)
    assert f"preempted by SIGUSR1 at step {step}: checkpoint callback ran on all 2 ranks; exiting with 138" in output
    assert "fabric run: got SIGUSR1; the workers checkpointed and ended (preemption)." in output, output


@pytest.mark.timeout(180)
def test_under_torchrun_the_run_is_preempted_and_torchrun_exits_non_zero(tmp_path: Path) -> None:
    # torchrun itself knows nothing of Fabric's records: it reports the worker's 143 as its failure and exits 1,
    # still non-zero, which is what a scheduler needs to requeue; the checkpoint is complete.
    port = str(find_free_port())
    torchrun = (sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", f"--master-port={port}")
    code, output = _run_and_signal(tmp_path, "2", "ddp", "default", "-1", target="rank-1", command=torchrun)
    assert code == 1, output  # torchrun's status for any failed worker
    assert "exitcode  : 143" in output, output  # its report names the worker's preemption exit code
    step = _assert_checkpointed_together(tmp_path, output, ranks=2)
    assert f"fabric: preempted by SIGTERM at step {step}: checkpoint callback ran on all 2 ranks" in output


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
        os.kill(os.getpid(), signal.SIGTERM)  # a copy (torchrun passing on what SLURM sent it too): no second signal
        assert preemption.received is signal.SIGTERM and calls == []
        optimizer.step()  # the 2nd step: a check
        assert calls == [0] and preemption.preempted and preemption.preempted_at == 2
        optimizer.step()
        optimizer.step()
        assert calls == [0]  # once per signal
    finally:
        preemption.close()
    assert signal.getsignal(signal.SIGTERM) is before and preemption not in fabric.callbacks


def test_in_process_a_second_signal_ends_at_once_without_the_callback() -> None:
    fabric = Fabric(accelerator="cpu", devices=1)
    calls: list[int] = []
    preemption = Preemption(fabric, lambda: calls.append(1))
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(SystemExit) as ended:
            os.kill(os.getpid(), signal.SIGUSR1)  # another signal: the scheduler (or the user) insists
        assert ended.value.code == 128 + signal.SIGUSR1 and not isinstance(ended.value, Preempted)
        assert calls == [] and preemption not in fabric.callbacks
    finally:
        preemption.close()


def test_in_process_the_requeue_handler_runs_after_the_checkpoint_and_its_sigterm_changes_nothing() -> None:
    # Like SLURMEnvironment's: a handler that was there before runs after the checkpoint, and the requeue makes
    # SLURM end the job with SIGTERM, which must not turn the preempted exit into a "second signal" one.
    order: list[str] = []

    def requeue(signum: int, frame: object) -> None:
        order.append(f"requeue on {signal.Signals(signum).name}")
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.signal(signal.SIGUSR1, requeue)
    try:
        fabric = Fabric(accelerator="cpu", devices=1)
        layer = nn.Linear(2, 1)
        _, optimizer = fabric.setup(layer, torch.optim.SGD(layer.parameters(), lr=0.1))
        preemption = Preemption(fabric, lambda: order.append("checkpoint"))
        os.kill(os.getpid(), signal.SIGUSR1)
        with pytest.raises(Preempted) as ended:
            optimizer.step()
        assert ended.value.code == 128 + signal.SIGUSR1
        assert order == ["checkpoint", "requeue on SIGUSR1"]
        assert preemption.received is None  # the SIGTERM was not taken for a new preemption
        assert signal.getsignal(signal.SIGUSR1) is requeue  # put back
    finally:
        signal.signal(signal.SIGUSR1, before)


def test_bad_arguments_are_named() -> None:
    fabric = Fabric(accelerator="cpu", devices=1)
    with pytest.raises(TypeError, match=r"Preemption\(on_preempt='save'\): expected a function"):
        Preemption(fabric, "save")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Preemption\(every_n_steps=0\): expected an int of 1 or more"):
        Preemption(fabric, lambda: None, every_n_steps=0)
    for bad in (256, -1, True, "sigterm"):
        with pytest.raises(ValueError, match=rf"Preemption\(exit_code={bad!r}\): expected 'signal' \(128 \+ the"):
            Preemption(fabric, lambda: None, exit_code=bad)  # type: ignore[arg-type]
    assert fabric.callbacks == []  # nothing half-installed


def test_in_process_the_default_ends_with_128_plus_the_signal(capsys: pytest.CaptureFixture[str]) -> None:
    before = signal.getsignal(signal.SIGUSR1)
    fabric = Fabric(accelerator="cpu", devices=1)
    layer = nn.Linear(2, 1)
    _, optimizer = fabric.setup(layer, torch.optim.SGD(layer.parameters(), lr=0.1))
    preemption = Preemption(fabric, lambda: None)
    os.kill(os.getpid(), signal.SIGUSR1)
    with pytest.raises(Preempted) as ended:
        optimizer.step()
    assert (ended.value.code, ended.value.signal, ended.value.step) == (138, signal.SIGUSR1, 1)
    assert isinstance(ended.value, SystemExit)
    assert signal.getsignal(signal.SIGUSR1) is before and preemption not in fabric.callbacks
    line = "fabric: preempted by SIGUSR1 at step 1: checkpoint callback ran on the one process; exiting with 138"
    assert line in capsys.readouterr().err
