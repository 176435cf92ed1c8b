"""Strategies: how a model, its optimizers and its checkpoints are spread over devices."""

from fabric_core.strategies.single_device import SingleDeviceStrategy
from fabric_core.strategies.strategy import Strategy

__all__ = ["SingleDeviceStrategy", "Strategy"]
