"""``fabric_core.plugins.collectives``: Lightning's Collective interface, for real.

SingleDeviceCollective is checked in process; TorchCollective in a one-process gloo group
in this process and in a two-process gloo group started with ``torch.multiprocessing``.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fabric_core.plugins.collectives import Collective, SingleDeviceCollective, TorchCollective
from fabric_core.testing import find_free_port


def test_single_device_collective_is_a_group_of_one() -> None:
    collective = SingleDeviceCollective().setup().create_group()
    assert isinstance(collective, Collective)
    assert (collective.rank, collective.world_size) == (0, 1)
    tensor = torch.tensor([1.0, 2.0])
    assert collective.all_reduce(tensor, op="sum") is tensor
    assert collective.broadcast(tensor, src=0) is tensor
    assert collective.all_gather([torch.empty(2)], tensor)[0] is tensor
    assert collective.scatter(torch.empty(2), [tensor]) is tensor
    collective.barrier()
    assert collective.teardown() is collective


def test_group_is_required_before_collectives() -> None:
    collective = SingleDeviceCollective()
    with pytest.raises(RuntimeError, match=r"SingleDeviceCollective owns no process group yet: call .*create_group"):
        _ = collective.group
    collective.create_group()
    with pytest.raises(RuntimeError, match="already owns a process group"):
        collective.create_group()


def test_reduce_op_names_are_converted_and_unknown_ones_refused() -> None:
    assert TorchCollective._convert_to_native_op("sum") == dist.ReduceOp.SUM
    assert TorchCollective._convert_to_native_op("MAX") == dist.ReduceOp.MAX
    assert TorchCollective._convert_to_native_op(dist.ReduceOp.MIN) == dist.ReduceOp.MIN
    with pytest.raises(ValueError, match=r"Reduction op 'median' is not supported: .*'sum'"):
        TorchCollective._convert_to_native_op("median")


@pytest.mark.skipif(dist.is_initialized(), reason="a process group exists in this process already")
def test_torch_collective_in_a_group_of_one_sets_up_and_tears_down_the_default_group() -> None:
    collective = TorchCollective()
    collective.setup(backend="gloo", rank=0, world_size=1, main_address="127.0.0.1", main_port=find_free_port())
    try:
        assert TorchCollective.is_initialized()
        collective.create_group()
        tensor = torch.tensor([3.0])
        assert collective.all_reduce(tensor, op="sum") is tensor
        assert collective.all_gather_object([None], {"a": 1}) == [{"a": 1}]
        assert (collective.rank, collective.world_size) == (0, 1)
    finally:
        collective.teardown()
    assert not dist.is_initialized()  # setup() made the default group, so teardown() removed it


def _two_ranks(rank: int, port: int, results: mp.SimpleQueue[tuple[int, list[float], float, float]]) -> None:
    collective = TorchCollective().setup(
        backend="gloo", rank=rank, world_size=2, main_address="127.0.0.1", main_port=port
    )
    collective.create_group()
    summed = collective.all_reduce(torch.tensor([float(rank + 1)]), op="sum")
    gathered = collective.all_gather([torch.zeros(1), torch.zeros(1)], torch.tensor([float(rank)]))
    received = torch.zeros(1)
    if rank == 0:
        collective.send(torch.tensor([42.0]), dst=1)
    else:
        collective.recv(received, src=0)
    collective.barrier()
    results.put((rank, [float(t.item()) for t in gathered], float(summed.item()), float(received.item())))
    collective.teardown()


@pytest.mark.timeout(120)
def test_torch_collective_across_two_processes() -> None:
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    port = find_free_port()  # both ranks meet on it
    processes = [context.Process(target=_two_ranks, args=(rank, port, results)) for rank in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=100)
        assert process.exitcode == 0
    by_rank = sorted(results.get() for _ in range(2))
    assert by_rank == [(0, [0.0, 1.0], 3.0, 0.0), (1, [0.0, 1.0], 3.0, 42.0)]
