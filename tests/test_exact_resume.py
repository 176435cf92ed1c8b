"""Exact resume: RandomState and the FabricDataLoader's data position in fabric.save/fabric.load.

A run stopped mid-epoch at step k and resumed from its checkpoint gives bit for bit the
losses and weights of the uninterrupted run: one process and 2-process DDP (real
processes), a shuffling DataLoader and a model with dropout, with Python's ``random`` and
NumPy drawn from in the loop so every generator matters. Controls show each piece is needed.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from fabric_core import Fabric
from fabric_core.utilities import RandomState
from fabric_core.wrappers import FabricDataLoader
from tests.helpers.processes import run_script

#: Trains for 3 epochs three ways in each process: uninterrupted, stopped at step ``STOP``
#: with a checkpoint, and resumed from it by fresh objects; each rank compares its own.
TRAIN = """
import random
import sys

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fabric_core import Fabric
from fabric_core.utilities import RandomState

DEVICES, NUM_WORKERS, STOP, EPOCHS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), 3
kwargs = {"strategy": "ddp"} if DEVICES > 1 else {}
fabric = Fabric(accelerator="cpu", devices=DEVICES, precision="32-true", **kwargs)
fabric.launch()
rank = fabric.global_rank
data = torch.Generator().manual_seed(0)
dataset = TensorDataset(torch.randn(48, 8, generator=data), torch.randn(48, 1, generator=data))


def fresh_start():
    fabric.seed_everything(42, verbose=False)  # also seeds the DDP sampler's shuffle
    # Different generators on each rank: restoring another rank's states would show.
    random.seed(100 + rank)
    np.random.seed(100 + rank)
    torch.manual_seed(100 + rank)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model, optimizer = fabric.setup(model, optimizer)
    loader = fabric.setup_dataloaders(DataLoader(dataset, batch_size=4, shuffle=True, num_workers=NUM_WORKERS))
    return model, optimizer, loader


def run(stop=None, resume=None, keys=("model", "optimizer", "rng", "data", "epoch", "step")):
    model, optimizer, loader = fresh_start()
    state = {"model": model, "optimizer": optimizer, "rng": RandomState(), "data": loader, "epoch": 0, "step": 0}
    if resume is not None:
        wanted = {key: state[key] for key in keys}
        fabric.load(resume, wanted)
        state.update({key: wanted[key] for key in ("epoch", "step")})
    losses, step = [], state["step"]
    for epoch in range(state["epoch"], EPOCHS):
        for inputs, targets in loader:
            noise = 1 + random.random() / 10 + float(np.random.rand()) / 10
            loss = nn.functional.mse_loss(model(inputs), targets) * noise
            fabric.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.detach().clone())
            step += 1
            if step == stop:
                state.update(epoch=epoch, step=step)
                fabric.save("resume.ckpt", state)
                return losses, None
    return losses, [p.detach().clone() for p in model.parameters()]


full_losses, full_weights = run()
first, _ = run(stop=STOP)
assert len(first) == STOP
rest, weights = run(resume="resume.ckpt")
assert len(first) + len(rest) == len(full_losses), (len(first), len(rest), len(full_losses))
for index, (a, b) in enumerate(zip(full_losses, first + rest)):
    assert torch.equal(a, b), f"rank {rank}: step {index + 1} loss {a.item()} != {b.item()}"
for a, b in zip(full_weights, weights):
    assert torch.equal(a, b), f"rank {rank}: weights differ"
print(f"EXACT OK rank {rank}", flush=True)

# Controls: without the random state, or without the data position, the run is not the same.
for left_out in ("rng", "data"):
    keys = tuple(key for key in ("model", "optimizer", "rng", "data", "epoch", "step") if key != left_out)
    rest, _ = run(resume="resume.ckpt", keys=keys)
    same = len(first) + len(rest) == len(full_losses) and all(
        torch.equal(a, b) for a, b in zip(full_losses, first + rest)
    )
    assert not same, f"rank {rank}: resuming without {left_out!r} was exact too, so the test proves nothing"
print(f"CONTROLS OK rank {rank}", flush=True)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("num_workers", [0, 1])
def test_one_process_resume_mid_epoch_is_bit_for_bit(tmp_path: Path, num_workers: int) -> None:
    # 12 batches per epoch: step 15 is batch 3 of epoch 1.
    run = run_script(tmp_path, TRAIN, "1", str(num_workers), "15")
    assert run.returncode == 0, run.output
    assert "EXACT OK rank 0" in run.output and "CONTROLS OK rank 0" in run.output, run.output


@pytest.mark.timeout(180)
def test_two_process_ddp_resume_mid_epoch_is_bit_for_bit(tmp_path: Path) -> None:
    # 6 batches per rank and epoch: step 9 is batch 3 of epoch 1.
    run = run_script(tmp_path, TRAIN, "2", "0", "9", timeout=170)
    assert run.returncode == 0, run.output
    for rank in (0, 1):
        assert f"EXACT OK rank {rank}" in run.output and f"CONTROLS OK rank {rank}" in run.output, run.output


# -- RandomState -------------------------------------------------------------------------------


def _draws() -> tuple[float, float, torch.Tensor]:
    return random.random(), float(np.random.rand()), torch.rand(3)


def test_random_state_round_trips_alone() -> None:
    saved = RandomState().state_dict()
    expected = _draws()
    _draws()
    RandomState().load_state_dict(saved)
    again = _draws()
    assert again[:2] == expected[:2] and torch.equal(again[2], expected[2])
    assert saved["world_size"] == 1 and len(saved["ranks"]) == 1


def test_random_state_round_trips_through_a_safe_checkpoint(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu", devices=1)
    fabric.save(tmp_path / "rng.ckpt", {"rng": RandomState()})
    expected = _draws()
    fabric.load(tmp_path / "rng.ckpt", {"rng": RandomState()})  # weights_only=True by default
    again = _draws()
    assert again[:2] == expected[:2] and torch.equal(again[2], expected[2])


def test_random_state_refuses_another_world_size_verbatim() -> None:
    saved = RandomState().state_dict()
    two_ranks = {"world_size": 2, "ranks": saved["ranks"] * 2}
    with pytest.raises(ValueError) as error:
        RandomState().load_state_dict(two_ranks)
    assert str(error.value) == (
        "RandomState: the checkpoint was saved by 2 process(es), but this run has 1 (world size 2 -> 1). Each "
        "process restores its own state, so an exact resume needs the same world size. To continue at world size "
        "1, leave this entry out of the state you pass to fabric.load (it comes back in the returned remainder)."
    )


def test_random_state_refuses_something_else() -> None:
    with pytest.raises(ValueError, match=r"expects the dict that RandomState.state_dict\(\) returned"):
        RandomState().load_state_dict({"epoch": 1})


# -- the data position -------------------------------------------------------------------------


class _CountingDataset(Dataset[int]):
    """Records which indices were loaded."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.loaded: list[int] = []

    def __getitem__(self, index: int) -> int:
        self.loaded.append(index)
        return index

    def __len__(self) -> int:
        return self.size


def _loader(dataset: Dataset[Any], **kwargs: Any) -> FabricDataLoader:
    fabric = Fabric(accelerator="cpu", devices=1)
    return fabric.setup_dataloaders(DataLoader(dataset, **kwargs))  # type: ignore[no-any-return]


@pytest.mark.parametrize("batch_size", [4, None])
def test_resume_skips_consumed_batches_without_loading_them(batch_size: int | None) -> None:
    torch.manual_seed(0)
    loader = _loader(_CountingDataset(20), batch_size=batch_size, shuffle=True)
    iterator = iter(loader)
    consumed = [next(iterator) for _ in range(2)]
    state = loader.state_dict()
    expected_rest = list(iterator)
    assert state["epoch"] == 0 and state["batches_yielded"] == 2

    dataset = _CountingDataset(20)
    torch.manual_seed(123)  # another global state: the order must come from the checkpoint
    resumed = _loader(dataset, batch_size=batch_size, shuffle=True)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert [b.tolist() if isinstance(b, torch.Tensor) else b for b in rest] == [
        b.tolist() if isinstance(b, torch.Tensor) else b for b in expected_rest
    ]
    consumed_indices = {i for b in consumed for i in (b.tolist() if isinstance(b, torch.Tensor) else [b])}
    assert not consumed_indices & set(dataset.loaded), "a skipped batch was loaded"
    # Then the next epoch starts from its beginning.
    assert resumed.state_dict()["epoch"] == 1 and resumed.state_dict()["batches_yielded"] == 0
    assert len(list(resumed)) == len(resumed)


def test_position_between_epochs_and_unfinished_load() -> None:
    loader = _loader(TensorDataset(torch.arange(8.0)), batch_size=2)
    assert loader.state_dict()["epoch"] == 0 and loader.state_dict()["batches_yielded"] == 0
    list(loader)
    assert loader.state_dict()["epoch"] == 1 and loader.state_dict()["batches_yielded"] == 0
    iterator = iter(loader)
    next(iterator)
    state = loader.state_dict()
    assert (state["epoch"], state["batches_yielded"]) == (1, 1)
    other = _loader(TensorDataset(torch.arange(8.0)), batch_size=2)
    other.load_state_dict(state)
    # Loaded but not iterated yet: it still reports the loaded position.
    assert (other.state_dict()["epoch"], other.state_dict()["batches_yielded"]) == (1, 1)
    assert [batch[0].tolist() for batch in other] == [[2.0, 3.0], [4.0, 5.0], [6.0, 7.0]]


def test_a_used_up_epoch_resumes_empty_then_goes_on() -> None:
    loader = _loader(TensorDataset(torch.arange(4.0)), batch_size=2)
    iterator = iter(loader)
    next(iterator), next(iterator)  # the last batch is out, the loop has not ended yet
    other = _loader(TensorDataset(torch.arange(4.0)), batch_size=2)
    other.load_state_dict(loader.state_dict())
    assert list(other) == []
    assert len(list(other)) == 2


def test_fabric_save_and_load_keep_the_wrapper(tmp_path: Path) -> None:
    fabric = Fabric(accelerator="cpu", devices=1)
    loader = fabric.setup_dataloaders(DataLoader(TensorDataset(torch.arange(8.0)), batch_size=2))
    iterator = iter(loader)
    next(iterator)
    fabric.save(tmp_path / "data.ckpt", {"loader": loader})
    assert fabric.load(tmp_path / "data.ckpt")["loader"]["batches_yielded"] == 1
    resumed = fabric.setup_dataloaders(DataLoader(TensorDataset(torch.arange(8.0)), batch_size=2))
    state = {"loader": resumed}
    fabric.load(tmp_path / "data.ckpt", state)
    assert state["loader"] is resumed
    assert [batch[0].tolist() for batch in resumed] == [[2.0, 3.0], [4.0, 5.0], [6.0, 7.0]]


def test_data_position_errors() -> None:
    loader = _loader(TensorDataset(torch.arange(8.0)), batch_size=2)
    with pytest.raises(ValueError, match="expects the data position"):
        loader.load_state_dict({"step": 3})
    state = loader.state_dict()
    with pytest.raises(ValueError) as error:
        loader.load_state_dict({**state, "batches_yielded": 9})
    assert str(error.value) == (
        "FabricDataLoader.load_state_dict(): the checkpoint says 9 batches of epoch 0 were consumed, but an epoch "
        "of this dataloader has 4 batches. Resume with the same dataset, batch size and number of processes as "
        "the saved run."
    )
    with pytest.raises(ValueError, match=r"saved by 2 process\(es\), but this run has 1"):
        loader.load_state_dict({**state, "batches_yielded": 1, "ranks": state["ranks"] * 2})
    # Between epochs, another world size is fine: nothing per process is needed.
    loader.load_state_dict({**state, "epoch": 2, "ranks": state["ranks"] * 2})
    assert loader.state_dict()["epoch"] == 2


class _OwnPositionLoader(DataLoader):  # type: ignore[type-arg]
    """Stands in for torchdata's StatefulDataLoader: a DataLoader that keeps its own position."""

    restored: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"own": 7}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.restored = state_dict


def test_a_dataloader_with_its_own_position_resumes_itself() -> None:
    fabric = Fabric(accelerator="cpu", devices=1)
    loader = fabric.setup_dataloaders(_OwnPositionLoader(TensorDataset(torch.arange(8.0)), batch_size=2))
    iterator = iter(loader)
    next(iterator)
    state = loader.state_dict()
    assert (state["epoch"], state["batches_yielded"], state["ranks"][0]["dataloader"]) == (0, 1, {"own": 7})
    inner = _OwnPositionLoader(TensorDataset(torch.arange(8.0)), batch_size=2)
    resumed = fabric.setup_dataloaders(inner)
    resumed.load_state_dict(state)
    assert inner.restored == {"own": 7}
    # Fabric skips nothing itself: the DataLoader's own state decides what comes next.
    assert len(list(resumed)) == 4
    assert (resumed.state_dict()["epoch"], resumed.state_dict()["batches_yielded"]) == (1, 0)


def test_a_position_from_another_kind_of_dataloader_is_refused() -> None:
    fabric = Fabric(accelerator="cpu", devices=1)
    plain = fabric.setup_dataloaders(DataLoader(TensorDataset(torch.arange(8.0)), batch_size=2))
    own = fabric.setup_dataloaders(_OwnPositionLoader(TensorDataset(torch.arange(8.0)), batch_size=2))
    with pytest.raises(ValueError) as error:
        plain.load_state_dict(own.state_dict())
    assert str(error.value) == (
        "FabricDataLoader.load_state_dict(): the saved DataLoader kept its own position (state_dict/load_state_dict, "
        "as torchdata's StatefulDataLoader), this DataLoader does not. Resume with the same kind of DataLoader as "
        "the saved run."
    )
    with pytest.raises(ValueError, match="did not keep its own position"):
        own.load_state_dict(plain.state_dict())
