"""DDP with real processes on CPU (gloo): parity, accumulation, start methods, data, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fabric_core import Fabric
from fabric_core.strategies.ddp import DDPStrategy
from tests.helpers.processes import run_script

PARITY = """
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from fabric_core import Fabric

def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))

fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp")
fabric.launch()
generator = torch.Generator().manual_seed(1)
dataset = TensorDataset(torch.randn(1600, 8, generator=generator), torch.randn(1600, 2, generator=generator))

# Hand-written DDP in the same processes, same data split.
raw = DistributedDataParallel(make_model())
raw_optimizer = torch.optim.SGD(raw.parameters(), lr=0.05, momentum=0.9)
sampler = DistributedSampler(dataset, num_replicas=2, rank=dist.get_rank(), shuffle=False)
for inputs, targets in DataLoader(dataset, batch_size=8, sampler=sampler):
    nn.functional.mse_loss(raw(inputs), targets).backward()
    raw_optimizer.step()
    raw_optimizer.zero_grad()

model = make_model()
model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
loader = fabric.setup_dataloaders(DataLoader(dataset, batch_size=8))
steps = 0
for inputs, targets in loader:
    fabric.backward(nn.functional.mse_loss(model(inputs), targets))
    optimizer.step()
    optimizer.zero_grad()
    steps += 1

assert steps == 100, steps
for (name, a), b in zip(raw.module.state_dict().items(), model.state_dict().values()):
    assert torch.equal(a, b), name
gathered = fabric.all_gather(model.state_dict()["0.weight"])
assert torch.equal(gathered[0], gathered[1])
assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
print(f"PARITY OK rank {fabric.global_rank}", flush=True)
"""


def test_fabric_ddp_equals_hand_written_ddp_bit_for_bit(tmp_path: Path) -> None:
    run = run_script(tmp_path, PARITY)
    assert run.returncode == 0, run.output
    assert "PARITY OK rank 0" in run.output and "PARITY OK rank 1" in run.output


ACCUMULATION = """
import sys
import torch
from torch import nn
from fabric_core import Fabric

def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))

def train(fabric, accumulate):
    model = make_model()
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.1))
    generator = torch.Generator().manual_seed(10 + fabric.global_rank)
    for step in range(5):
        inputs, targets = torch.randn(16, 8, generator=generator), torch.randn(16, 1, generator=generator)
        if accumulate:
            for index, (x, y) in enumerate(zip(inputs.chunk(4), targets.chunk(4))):
                with fabric.no_backward_sync(model, enabled=index < 3):
                    fabric.backward(nn.functional.mse_loss(model(x), y) / 4)
        else:
            fabric.backward(nn.functional.mse_loss(model(inputs), targets))
        optimizer.step()
        optimizer.zero_grad()
    return [p.detach().clone() for p in model.parameters()]

def run(fabric):
    whole = train(fabric, accumulate=False)
    accumulated = train(fabric, accumulate=True)
    for a, b in zip(whole, accumulated):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # The replicas agree, so gradients really were synchronized on the last micro-batch.
    gathered = fabric.all_gather(accumulated[0])
    assert torch.equal(gathered[0], gathered[1])
    print(f"ACCUMULATION OK rank {fabric.global_rank} {type(fabric.strategy).__name__}", flush=True)
    return fabric.global_rank + 100

if __name__ == "__main__":
    strategy = sys.argv[1]
    fabric = Fabric(accelerator="cpu", devices=2, strategy=strategy)
    if strategy == "ddp":
        fabric.launch()
        run(fabric)
    else:
        print("RESULT", fabric.launch(run), flush=True)
"""


@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn", "ddp_fork", "ddp_notebook"])
def test_gradient_accumulation_equals_a_larger_batch_for_every_start_method(tmp_path: Path, strategy: str) -> None:
    run = run_script(tmp_path, ACCUMULATION, strategy)
    assert run.returncode == 0, run.output
    assert "ACCUMULATION OK rank 0 DDPStrategy" in run.output
    assert "ACCUMULATION OK rank 1 DDPStrategy" in run.output
    if strategy != "ddp":
        assert "RESULT 100" in run.output  # rank 0's return value comes back to the caller


COLLECTIVES_AND_DATA = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from fabric_core import Fabric

class NamedLoader(DataLoader):
    def __init__(self, dataset, label, **kwargs):
        super().__init__(dataset, **kwargs)
        self.label = label

fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp")
fabric.launch()
rank = fabric.global_rank
assert fabric.world_size == 2 and fabric.local_rank == rank and fabric.node_rank == 0

# Collectives: tensors, collections, uneven first dimensions, reductions, objects.
gathered = fabric.all_gather({"rank": torch.tensor([rank]), "n": rank})
assert gathered["rank"].tolist() == [[0], [1]] and gathered["n"].tolist() == [0, 1]
uneven = fabric.all_gather(torch.arange(rank + 1))
assert [part.tolist() for part in uneven] == [[0], [0, 1]]
assert fabric.all_reduce(torch.tensor(float(rank)), reduce_op="sum").item() == 1.0
assert fabric.all_reduce(torch.tensor(float(rank))).item() == 0.5
assert fabric.all_reduce(rank, reduce_op="max").item() == 1
assert fabric.all_reduce({"a": torch.tensor([rank, 2.0])}, reduce_op="min")["a"].tolist() == [0.0, 2.0]
assert fabric.broadcast({"from": rank, "list": [rank]}) == {"from": 0, "list": [0]}
assert fabric.broadcast(rank, src=1) == 1
x = torch.ones(2, requires_grad=True)
fabric.all_gather(x * (rank + 1), sync_grads=True).sum().backward()
# Both ranks' losses hold this rank's tensor times (rank + 1): its gradient is their sum.
assert x.grad.tolist() == [2.0 * (rank + 1)] * 2, x.grad
order_file = "order.txt"
with fabric.rank_zero_first():
    with open(order_file, "a") as file:
        file.write(str(rank))
fabric.barrier()
assert open(order_file).read() == "01"

# Data: each rank its own half; epochs reshuffle; a DataLoader subclass keeps its class and attributes.
dataset = TensorDataset(torch.arange(20))
loader = fabric.setup_dataloaders(NamedLoader(dataset, "mine", batch_size=5, shuffle=True))
assert type(loader._dataloader) is NamedLoader and loader.label == "mine" and len(loader) == 2
first = torch.cat([batch[0] for batch in loader])
second = torch.cat([batch[0] for batch in loader])
assert len(first) == len(second) == 10 and not torch.equal(first, second)  # set_epoch reshuffled
for epoch in (first, second):  # in each epoch the ranks split the data between them
    assert sorted(fabric.all_gather(epoch).flatten().tolist()) == list(range(20))
plain = fabric.setup_dataloaders(DataLoader(dataset, batch_size=5), use_distributed_sampler=False)
assert len(plain) == 4

# Checkpoints: rank 0 writes, every rank loads.
model = nn.Linear(3, 3)
model, optimizer = fabric.setup(model, torch.optim.Adam(model.parameters()))
fabric.backward(model(torch.ones(2, 3)).sum())
optimizer.step()
fabric.save("ckpt.pt", {"model": model, "optimizer": optimizer, "rank_that_saved": rank})
restored = nn.Linear(3, 3)
restored, restored_optimizer = fabric.setup(restored, torch.optim.Adam(restored.parameters()))
state = {"model": restored, "optimizer": restored_optimizer, "rank_that_saved": -1}
fabric.load("ckpt.pt", state)
assert state["rank_that_saved"] == 0
assert torch.equal(restored.weight, model.weight)
print(f"ALL OK rank {rank}", flush=True)
"""


def test_collectives_data_and_checkpoints_on_two_processes(tmp_path: Path) -> None:
    run = run_script(tmp_path, COLLECTIVES_AND_DATA)
    assert run.returncode == 0, run.output
    assert "ALL OK rank 0" in run.output and "ALL OK rank 1" in run.output


def test_selection_of_ddp_names() -> None:
    fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp_spawn_find_unused_parameters_true")
    assert isinstance(fabric.strategy, DDPStrategy)
    assert fabric.strategy.start_method == "spawn"
    assert fabric.strategy._ddp_kwargs == {"find_unused_parameters": True}
    assert fabric.strategy.process_group_backend == "gloo"
    assert isinstance(Fabric(accelerator="cpu", devices=2).strategy, DDPStrategy)  # strategy="auto"
    with pytest.warns(UserWarning, match="strategy='dp' is not supported on accelerator='cpu'; using strategy='ddp'"):
        fabric = Fabric(accelerator="cpu", devices=2, strategy="dp")
    assert isinstance(fabric.strategy, DDPStrategy) and fabric.strategy.start_method == "popen"
    with pytest.raises(ValueError, match="start_method='thread'"):
        DDPStrategy(start_method="thread")


def test_setup_before_launch_is_refused() -> None:
    fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp")
    with pytest.raises(RuntimeError, match=r"runs 2 processes, but fabric.launch\(\) was not called"):
        fabric.setup(torch.nn.Linear(1, 1))


NO_GUARD = """
from fabric_core import Fabric
fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp_spawn")
fabric.launch(lambda fabric: None)
"""


def test_spawn_without_main_guard_is_refused(tmp_path: Path) -> None:
    run = run_script(tmp_path, NO_GUARD)
    assert run.returncode != 0
    assert 'has no `if __name__ == "__main__":` guard' in run.output


def test_custom_batch_sampler_gives_every_rank_the_same_number_of_batches() -> None:
    from torch.utils.data import BatchSampler, SequentialSampler

    from fabric_core.data import DistributedBatchSamplerWrapper

    class EveryOther(BatchSampler):
        pass

    inner = EveryOther(SequentialSampler(range(10)), batch_size=2, drop_last=False)  # 5 batches
    ranks = [list(DistributedBatchSamplerWrapper(inner, 2, rank)) for rank in range(2)]
    assert [len(batches) for batches in ranks] == [3, 3]
    assert len(DistributedBatchSamplerWrapper(inner, 2, 0)) == 3
    assert ranks[0] == [[0, 1], [4, 5], [8, 9]] and ranks[1] == [[2, 3], [6, 7], [0, 1]]


LAUNCH_RESULTS = """
import sys
import torch
from fabric_core import Fabric

def work(fabric):
    return {"rank": fabric.global_rank, "tensor": torch.arange(3) * 2}

if __name__ == "__main__":
    fabric = Fabric(accelerator="cpu", devices=2, strategy=sys.argv[1])
    if sys.argv[2] == "nofunction":
        fabric.launch()
    else:
        result = fabric.launch(work)
        print("RESULT", result["rank"], result["tensor"].tolist(), flush=True)
"""


@pytest.mark.parametrize("strategy", ["ddp_spawn", "ddp_fork"])
def test_launch_returns_tensors_and_needs_a_function(tmp_path: Path, strategy: str) -> None:
    run = run_script(tmp_path, LAUNCH_RESULTS, strategy, "function")
    assert run.returncode == 0, run.output
    assert "RESULT 0 [0, 2, 4]" in run.output
    refused = run_script(tmp_path, LAUNCH_RESULTS, strategy, "nofunction", timeout=60)
    assert refused.returncode != 0
    assert "fabric.launch() needs one: fabric.launch(train)" in refused.output
