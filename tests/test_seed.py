"""Seeds are exact: the global seed fixes the distributed shuffle and the workers' seeds (real processes)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from fabric_core import Fabric, seed_everything
from fabric_core.utilities.seed import pl_worker_init_function, reset_seed, worker_init_function
from tests.helpers.processes import ROOT, run_script

SHARDS = """
import json
import os
import sys
import torch
from torch.utils.data import DataLoader, Dataset
from fabric_core import Fabric

class Noise(Dataset):
    # Each item is (index, a random draw in the worker that loads it).
    def __len__(self):
        return 8
    def __getitem__(self, index):
        return index, torch.rand(()).item()

fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp")
fabric.launch()
fabric.seed_everything(int(sys.argv[1]))
loader = fabric.setup_dataloaders(DataLoader(Noise(), batch_size=1, shuffle=True, num_workers=2))
epochs = []
for _ in range(2):
    epochs.append([(int(index), float(draw)) for index, draw in loader])
result = {"rank": fabric.global_rank, "epochs": epochs, "seed_workers": os.environ.get("PL_SEED_WORKERS")}
os.write(1, ("RESULT " + json.dumps(result) + "\\n").encode())
"""


def _shards(tmp_path: Path, seed: int) -> dict[int, dict]:
    run = run_script(tmp_path, SHARDS, str(seed), timeout=120)
    assert run.returncode == 0, run.output
    lines = [json.loads(line[7:]) for line in run.output.splitlines() if line.startswith("RESULT ")]
    return {result["rank"]: result for result in lines}


def _lightning_order(seed: int, rank: int, epoch: int) -> list[int]:
    # What Lightning Fabric does for a shuffling DataLoader: a DistributedSampler seeded with
    # the global seed, told the epoch by its dataloader wrapper.
    sampler = DistributedSampler(range(8), num_replicas=2, rank=rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)


@pytest.mark.timeout(300)
def test_the_distributed_shuffle_follows_the_global_seed_and_workers_are_seeded_per_rank(tmp_path: Path) -> None:
    first, second = _shards(tmp_path, 1), _shards(tmp_path, 2)
    for seed, results in ((1, first), (2, second)):
        for rank in (0, 1):
            assert results[rank]["seed_workers"] == "1"  # Fabric.seed_everything defaults workers=True
            for epoch in (0, 1):
                indices = [index for index, _ in results[rank]["epochs"][epoch]]
                assert indices == _lightning_order(seed, rank, epoch), (seed, rank, epoch)
    assert [i for i, _ in first[0]["epochs"][0]] != [i for i, _ in second[0]["epochs"][0]]
    # The two ranks see disjoint halves of the data in every epoch.
    for epoch in (0, 1):
        seen = [index for rank in (0, 1) for index, _ in first[rank]["epochs"][epoch]]
        assert sorted(seen) == list(range(8))
    # Every worker of every rank draws its own numbers (without per-rank seeding, worker 0 of
    # rank 0 and worker 0 of rank 1 would draw the same ones), and the same for the same seed.
    draws = [draw for rank in (0, 1) for _, draw in first[rank]["epochs"][0]]
    assert len(set(draws)) == len(draws) == 8
    assert _shards(tmp_path, 1) == first


def test_integral_float_seeds_and_the_valid_range() -> None:
    assert seed_everything(42.0) == 42
    assert os.environ["PL_GLOBAL_SEED"] == "42"
    with pytest.raises(ValueError, match=r"must be a whole number; 1\.5 would be truncated. Pass 1 if"):
        seed_everything(1.5)
    with pytest.raises(ValueError, match=r"seed=4294967296\): the seed must be between 0 and 4294967295"):
        seed_everything(2**32)
    with pytest.raises(ValueError, match=r"seed=-1\): the seed must be between 0 and 4294967295"):
        seed_everything(-1)
    with pytest.raises(TypeError, match="the seed must be an int, got str"):
        seed_everything("7")  # type: ignore[arg-type]


def test_a_bad_seed_in_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "abc")
    with pytest.raises(ValueError, match="PL_GLOBAL_SEED='abc' is not an integer seed"):
        seed_everything()
    monkeypatch.setenv("PL_GLOBAL_SEED", "17")
    assert seed_everything() == 17


def test_seed_set_is_recorded() -> None:
    env = {**os.environ, "FABRIC_LOG_LEVEL": "info", "PYTHONPATH": str(ROOT)}
    env.pop("PL_GLOBAL_SEED", None)
    code = "from fabric_core import seed_everything; seed_everything(7); seed_everything()"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Seed set to 7" in result.stderr
    env["FABRIC_LOG_LEVEL"] = "warning"
    code = "from fabric_core import seed_everything; seed_everything()"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "No seed found, seed set to 0" in result.stderr


def test_fabric_seed_everything_seeds_workers_by_default() -> None:
    fabric = Fabric(accelerator="cpu")
    fabric.seed_everything(3)
    loader = fabric.setup_dataloaders(DataLoader(range(4), num_workers=1))
    assert loader.worker_init_fn is not None
    seed_everything(3)  # the function keeps Lightning's default: workers=False
    assert fabric.setup_dataloaders(DataLoader(range(4))).worker_init_fn is None


def test_reset_seed_repeats_the_last_seed() -> None:
    reset_seed()  # never seeded: nothing to repeat, no error
    seed_everything(5, workers=True)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    reset_seed()
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
    assert os.environ["PL_SEED_WORKERS"] == "1"


def test_worker_seeds_differ_per_rank_and_worker() -> None:
    assert pl_worker_init_function is worker_init_function
    draws = set()
    for rank in (0, 1):
        for worker in (0, 1):
            torch.manual_seed(100 + worker)  # what DataLoader does: base seed + worker id
            worker_init_function(worker, rank=rank)
            draws.add((torch.rand(1).item(), np.random.rand(), random.random()))
    assert len(draws) == 4
