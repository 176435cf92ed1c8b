"""More than one XLA device on the CPU: what torch_xla 2.9 does, and what fabric-xla says about it.

``strategy="xla"`` needs collectives between the devices (gradients are all-reduced on every
step). torch_xla's PJRT CPU client has none that work: with ``CPU_NUM_DEVICES=2`` its
launcher starts *one* process with one thread per device, and the first collective waits for
a rendezvous that never completes, until the runtime aborts the process
(pytorch/xla#5005, open as pytorch/xla#9089). Separate processes (torchrun) each get a CPU
client of their own with world size 1, so their collectives do nothing. fabric-xla therefore
refuses several CPU devices with that explanation; the canary below runs torch_xla alone and
fails the day torch_xla's CPU collectives work, so that the refusal can be lifted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fabric_core import Fabric
from fabric_core.testing import run_script

CANARY = """
import os, threading
import torch, torch_xla
import torch_xla.core.xla_model as xm
import torch_xla.runtime as xr

def replica(index):
    print(f"replica {xr.global_ordinal()} of {xr.world_size()} in pid {os.getpid()}", flush=True)
    total = xm.all_reduce(xm.REDUCE_SUM, torch.ones(3).to(torch_xla.device()))
    torch_xla.sync()
    print("reduced", total.cpu().tolist(), flush=True)

if __name__ == "__main__":
    torch_xla.launch(replica)
"""


def test_several_cpu_devices_are_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPU_NUM_DEVICES", "2")
    with pytest.raises(
        ValueError,
        match=r"strategy='xla' on 2 XLA CPU devices cannot run: torch_xla's CPU client has no collectives between "
        r"devices .*pytorch/xla#9089.*Use devices=1 on the CPU",
    ):
        Fabric(accelerator="tpu", devices=2)  # strategy="auto" picks "xla" for 2 devices
    with pytest.raises(ValueError, match=r"strategy='xla_fsdp' on 2 XLA CPU devices cannot run"):
        Fabric(accelerator="tpu", devices=2, strategy="xla_fsdp")
    with pytest.raises(ValueError, match=r"strategy='single_xla' runs one process on one XLA device, but 2 device"):
        Fabric(accelerator="tpu", devices=2, strategy="single_xla")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_canary_torch_xla_cpu_collectives_between_two_devices_abort(tmp_path: Path) -> None:
    # A script file, not ``python -c``: XLA's launcher spawns processes that import ``__main__``.
    result = run_script(tmp_path, CANARY, timeout=240, env={"CPU_NUM_DEVICES": "2"})
    pids = {line.rsplit(" ", 1)[1] for line in result.output.splitlines() if line.startswith("replica ")}
    assert len(pids) == 1, result.output  # two replicas, but threads of one process
    assert "of 2 in pid" in result.output, result.output
    if result.returncode == 0 and "reduced [2.0, 2.0, 2.0]" in result.output:
        pytest.fail(
            "torch_xla's CPU collectives work now: lift the refusal of several CPU devices in "
            "fabric_xla.strategies.xla.XLAStrategy.validate and test strategy='xla' on 2 CPU devices."
        )
    assert result.returncode != 0, result.output
    assert "Expected 2 threads to join the rendezvous" in result.output, result.output
