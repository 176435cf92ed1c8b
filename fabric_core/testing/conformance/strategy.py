"""The strategy suite: a strategy that runs in this process trains, checkpoints and gathers as Fabric promises.

Multi-process strategies are checked in a real run instead, with the ``conformance_run``
fixture (:func:`~fabric_core.testing.run_training_script`), which runs the same checks on
every rank.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from fabric_core.fabric import Fabric
from fabric_core.testing.checks import check_checkpoint_round_trip, check_collectives, check_training_reduces_loss

__all__ = ["StrategyConformance"]


class StrategyConformance:
    """For strategies that run in one process. Implement :meth:`make_fabric`.

    .. code-block:: python

        class TestMyStrategy(StrategyConformance):
            def make_fabric(self):
                return Fabric(accelerator="cpu", strategy="my_strategy")
    """

    def make_fabric(self) -> Fabric:
        """A new Fabric that uses the strategy (by name, or an instance in ``strategy=``)."""
        raise NotImplementedError("Return Fabric(strategy=<your strategy>, ...) from make_fabric().")

    @pytest.fixture
    def fabric(self) -> Fabric:
        fabric = self.make_fabric()
        fabric.launch()
        return fabric

    def test_trains(self, fabric: Fabric) -> None:
        check_training_reduces_loss(fabric)

    def test_checkpoint_round_trip(self, fabric: Fabric, tmp_path: Path) -> None:
        check_checkpoint_round_trip(fabric, tmp_path / "checkpoint")

    def test_collectives(self, fabric: Fabric) -> None:
        check_collectives(fabric)

    def test_state_dict_has_no_wrapper_prefix(self, fabric: Fabric) -> None:
        model = fabric.setup(nn.Linear(2, 2))
        assert sorted(model.state_dict()) == ["bias", "weight"], sorted(model.state_dict())
