"""Fabric-trained weights equal raw-PyTorch-trained weights (DESIGN.md section 9)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fabric_core import Fabric
from tests.helpers.models import make_data, make_mlp

STEPS = 200


def _train_raw(precision: str) -> nn.Module:
    model = make_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for inputs, targets in make_data(STEPS):
        if precision == "bf16-mixed":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                output = model(inputs)
            output = output.float()
        else:
            output = model(inputs)
        loss = nn.functional.mse_loss(output, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model


def _train_fabric(precision: str) -> nn.Module:
    fabric = Fabric(accelerator="cpu", devices=1, precision=precision)
    model = make_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model, optimizer = fabric.setup(model, optimizer)
    for inputs, targets in make_data(STEPS):
        output = model(inputs)
        assert output.dtype == torch.float32
        loss = nn.functional.mse_loss(output, targets)
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
    return model.module


def test_32_true_is_bit_for_bit_equal_to_raw_pytorch() -> None:
    raw, fabric = _train_raw("32-true"), _train_fabric("32-true")
    for (name, expected), actual in zip(raw.state_dict().items(), fabric.state_dict().values(), strict=True):
        assert torch.equal(expected, actual), name
    # The run really trained: the weights moved away from the initial ones.
    assert not torch.equal(make_mlp().state_dict()["0.weight"], fabric.state_dict()["0.weight"])


def test_bf16_mixed_matches_hand_written_autocast_loop() -> None:
    raw, fabric = _train_raw("bf16-mixed"), _train_fabric("bf16-mixed")
    for (name, expected), actual in zip(raw.state_dict().items(), fabric.state_dict().values(), strict=True):
        assert actual.dtype == torch.float32
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-true", "16-true", "64-true"])
def test_other_precisions_train(precision: str) -> None:
    fabric = Fabric(accelerator="cpu", precision=precision)
    model = make_mlp()
    model, optimizer = fabric.setup(model, torch.optim.SGD(model.parameters(), lr=0.05))
    inputs, targets = make_data(1)[0]
    losses = []
    for _ in range(30):
        output = model(inputs)
        assert output.dtype == torch.get_default_dtype()
        loss = nn.functional.mse_loss(output, targets)
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]
