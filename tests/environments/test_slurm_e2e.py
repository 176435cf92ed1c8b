"""Fabric inside (fake) SLURM allocations, end to end: one task in-process, two tasks as
two real processes started here the way srun would start them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fabric_core import Fabric
from fabric_core.environments import SLURMEnvironment


def test_single_task_allocation_trains_one_step(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SLURM_JOB_ID": "777",
        "SLURM_JOB_NAME": "train",
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_NNODES": "1",
        "SLURM_NODELIST": "node042",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
    }.items():
        monkeypatch.setenv(name, value)

    fabric = Fabric(accelerator="cpu", devices=1, num_nodes=1)
    assert isinstance(fabric.strategy.cluster_environment, SLURMEnvironment)
    fabric.launch()
    assert (fabric.global_rank, fabric.local_rank, fabric.node_rank, fabric.world_size) == (0, 0, 0, 1)

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    before = model.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = fabric.setup(model, optimizer)
    loss = model(torch.randn(8, 4)).pow(2).sum()
    fabric.backward(loss)
    optimizer.step()
    assert not torch.equal(before, model.weight.detach())


SCRIPT = """
    import torch

    from fabric_core import Fabric
    from fabric_core.environments import SLURMEnvironment

    fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp")
    assert isinstance(fabric.strategy.cluster_environment, SLURMEnvironment), fabric.strategy.cluster_environment
    fabric.launch()
    total = fabric.all_reduce(torch.tensor(float(fabric.global_rank)), reduce_op="sum")
    print(f"rank={fabric.global_rank} local_rank={fabric.local_rank} world_size={fabric.world_size} "
          f"result={total.item()}", flush=True)
    """


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_two_slurm_tasks_all_reduce(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT))
    base = {
        **os.environ,  # already without scheduler variables (see conftest)
        "SLURM_JOB_ID": "31337",
        "SLURM_JOB_NAME": "train",
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NNODES": "1",
        "SLURM_NODELIST": "127.0.0.1",
        "SLURM_NODEID": "0",
        "MASTER_PORT": str(_free_port()),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(script)],
            env={**base, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for rank in range(2)
    ]
    outputs: list[tuple[int, str, str]] = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=180)
            outputs.append((proc.returncode, stdout, stderr))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=30)
    for rank, (code, stdout, stderr) in enumerate(outputs):
        assert code == 0, f"rank {rank} failed:\n{stdout}\n{stderr}"
        assert f"rank={rank} local_rank={rank} world_size=2 result=1.0" in stdout, stdout + stderr
