"""The small steps the multi-process strategies are made of, each on its own (no process group needed)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fabric_core.strategies import mesh, optimizer_repointing, sharding
from fabric_core.strategies.fsdp import FSDPStrategy
from fabric_core.strategies.model_parallel import ModelParallelStrategy
from fabric_core.strategies.sharded import ShardedStrategy


def test_fsdp_mesh_layout_for_each_sharding_strategy() -> None:
    assert mesh.fsdp_mesh_layout("FULL_SHARD", None, 4, 2, 2) == ((4,), ("shard",))
    assert mesh.fsdp_mesh_layout("SHARD_GRAD_OP", None, 4, 2, 2) == ((4,), ("shard",))
    assert mesh.fsdp_mesh_layout("NO_SHARD", None, 4, 2, 2) == ((4, 1), ("replicate", "shard"))
    assert mesh.fsdp_mesh_layout("HYBRID_SHARD", None, 4, 2, 2) == ((2, 2), ("replicate", "shard"))
    assert mesh.fsdp_mesh_layout("HYBRID_SHARD", (1, 4), 4, 2, 2) == ((1, 4), ("replicate", "shard"))
    with pytest.raises(ValueError, match=r"device_mesh=\(3, 2\)\) needs 6 processes, but the run has 4"):
        mesh.fsdp_mesh_layout("HYBRID_SHARD", (3, 2), 4, 2, 2)


def test_model_parallel_shape_defaults_to_nodes_by_processes() -> None:
    assert mesh.model_parallel_shape("auto", "auto", 2, 4) == (2, 4)
    assert mesh.model_parallel_shape(1, "auto", 1, 4) == (1, 4)
    with pytest.raises(ValueError, match="makes a 3 x 4 mesh, but the run has 4 processes"):
        mesh.model_parallel_shape(3, "auto", 1, 4)


def test_fully_shard_arguments_are_checked_against_its_signature() -> None:
    sharding.check_fully_shard_arguments({"reshard_after_forward": False, "ignored_params": None})
    with pytest.raises(TypeError, match=r"unknown arguments \['mesh'\].*reshard_after_forward"):
        sharding.check_fully_shard_arguments({"mesh": None})  # the strategy builds the mesh
    with pytest.raises(TypeError, match=r"unknown arguments \['find_unused_parameters'\]"):
        FSDPStrategy(find_unused_parameters=True)  # a DDP argument, which FSDP has no use for
    strategy = FSDPStrategy(reshard_after_forward=False)
    assert strategy._fully_shard_kwargs == {"reshard_after_forward": False}


def test_fully_shard_options_follow_precision_and_offload() -> None:
    options = sharding.fully_shard_options(None, "SHARD_GRAD_OP", "bf16-true", True, torch.device("cpu"), {})
    assert options["reshard_after_forward"] is False
    assert options["mp_policy"].param_dtype == torch.bfloat16 and options["mp_policy"].reduce_dtype == torch.bfloat16
    assert options["offload_policy"].pin_memory is False  # nothing to pin for on a CPU-only run
    mixed = sharding.fully_shard_options(None, "FULL_SHARD", "16-mixed", False, torch.device("cpu"), {"x": 1})
    assert mixed["mp_policy"].param_dtype is None and mixed["x"] == 1 and "offload_policy" not in mixed
    full = sharding.fully_shard_options(None, "FULL_SHARD", "32-true", False, torch.device("cpu"), {})
    assert "mp_policy" not in full


def test_as_policy_takes_classes_or_a_function() -> None:
    by_class = sharding.as_policy({nn.Linear}, "auto_wrap_policy")
    assert by_class is not None and by_class(nn.Linear(1, 1)) and not by_class(nn.ReLU())
    assert sharding.as_policy(None, "auto_wrap_policy") is None
    with pytest.raises(TypeError, match="expected a set of nn.Module classes"):
        sharding.as_policy({int}, "auto_wrap_policy")


def test_materialize_gives_a_meta_model_storage_and_initial_values() -> None:
    with torch.device("meta"):
        model = nn.Linear(3, 2)
    sharding.materialize(model, torch.device("cpu"))
    assert model.weight.device.type == "cpu" and not torch.all(model.weight == 0)


def test_optimizers_are_repointed_at_new_parameters_by_name() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    optimizer = torch.optim.SGD([{"params": [model[1].weight]}, {"params": [model[0].weight, model[1].bias]}], lr=0.1)
    order = optimizer_repointing.parameter_names(model, [optimizer])
    assert order == [["1.weight"], ["0.weight", "1.bias"]]
    # What sharding does: every parameter replaced by a new one.
    for module in model:
        module.weight = nn.Parameter(module.weight.detach().clone())
        module.bias = nn.Parameter(module.bias.detach().clone())
    optimizer_repointing.repoint(model, [optimizer], order)
    assert optimizer.param_groups[0]["params"][0] is model[1].weight
    assert optimizer.param_groups[1]["params"] == [model[0].weight, model[1].bias]
    optimizer_repointing.check_owned(optimizer, [model])
    stale = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"holds 2 parameter\(s\) that belong to no model set up"):
        optimizer_repointing.check_owned(stale, [model])


def test_an_optimizer_that_stepped_or_holds_other_parameters_is_refused() -> None:
    model = nn.Linear(2, 1)
    other = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="not in the model set up with it"):
        optimizer_repointing.parameter_names(model, [other])
    stepped = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    stepped.step()
    with pytest.raises(RuntimeError, match="has already stepped"):
        optimizer_repointing.parameter_names(model, [stepped])


def test_fsdp_and_model_parallel_are_siblings_on_the_sharded_base() -> None:
    assert issubclass(FSDPStrategy, ShardedStrategy) and issubclass(ModelParallelStrategy, ShardedStrategy)
    assert not issubclass(ModelParallelStrategy, FSDPStrategy)
    with pytest.raises(TypeError, match="abstract"):
        ShardedStrategy()  # type: ignore[abstract]
