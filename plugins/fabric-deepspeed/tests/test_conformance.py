"""fabric-deepspeed passes fabric-core's strategy conformance checks (``fabric_core.testing``).

Each check runs in a real training script on 2 processes (gloo on the CPU), as for the
core's own multi-process strategies: the collectives, training until the loss halves, and a
checkpoint saved, loaded into fresh objects and resumed with identical losses. The
processes are started by ``fabric.launch()`` from ``python script.py``, and once by torchrun.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.mark.timeout(600)
@pytest.mark.parametrize("strategy", ["deepspeed_stage_1", "deepspeed_stage_2", "deepspeed_stage_3"])
def test_zero_stages_conform(conformance_run: Callable[..., str], strategy: str) -> None:
    output = conformance_run(strategy, 2)
    assert "CONFORMANCE OK rank 0" in output and "CONFORMANCE OK rank 1" in output


@pytest.mark.timeout(600)
def test_conforms_when_torchrun_starts_the_processes(conformance_run: Callable[..., str]) -> None:
    output = conformance_run("deepspeed_stage_2", 2, launcher="torchrun")
    assert "CONFORMANCE OK rank 0" in output and "CONFORMANCE OK rank 1" in output
