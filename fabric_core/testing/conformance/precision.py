"""The precision suite: training converges, outputs keep the default dtype, contexts clean up, state survives."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from fabric_core.fabric import Fabric
from fabric_core.precision.precision import Precision
from fabric_core.testing.checks import check_checkpoint_round_trip, check_training_reduces_loss

__all__ = ["PrecisionConformance", "assert_same_state"]


def assert_same_state(actual: Any, expected: Any, where: str = "state_dict()") -> None:
    """``actual`` equals ``expected``, recursively: dict keys, sequences, tensors (values and dtype), plain values.

    :raises AssertionError: naming the first path (``state_dict()['scale']``) that differs.
    """
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where} is {type(actual).__name__}, expected a dict"
        assert sorted(map(str, actual)) == sorted(map(str, expected)), (
            f"{where} has keys {sorted(map(str, actual))}, expected {sorted(map(str, expected))}"
        )
        for key in expected:
            assert_same_state(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)) and len(actual) == len(expected), (
            f"{where} is {actual!r}, expected {expected!r}"
        )
        for index, (left, right) in enumerate(zip(actual, expected, strict=True)):
            assert_same_state(left, right, f"{where}[{index}]")
    elif isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), f"{where} is {type(actual).__name__}, expected a tensor"
        assert actual.dtype == expected.dtype, f"{where} has dtype {actual.dtype}, expected {expected.dtype}"
        assert torch.equal(actual.cpu(), expected.cpu()), f"{where} is {actual}, expected {expected}"
    else:
        assert actual == expected, f"{where} is {actual!r}, expected {expected!r}"


class PrecisionConformance:
    """For precision plugins. Implement :meth:`make_precision`.

    .. code-block:: python

        class TestMyPrecision(PrecisionConformance):
            def make_precision(self):
                return MyPrecision()
    """

    def make_precision(self) -> Precision:
        """A new instance of the precision, not yet set up."""
        raise NotImplementedError("Return your Precision instance from make_precision().")

    def test_trains_with_outputs_in_default_dtype(self) -> None:
        check_training_reduces_loss(Fabric(accelerator="cpu", plugins=[self.make_precision()]))

    def test_checkpoint_round_trip(self, tmp_path: Path) -> None:
        check_checkpoint_round_trip(Fabric(accelerator="cpu", plugins=[self.make_precision()]), tmp_path / "c.pt")

    def test_contexts_restore_the_default_dtype(self) -> None:
        precision = self.make_precision()
        precision.setup("cpu")
        for context in (precision.forward_context(), precision.module_init_context(), precision.tensor_init_context()):
            with context:
                pass
            assert torch.get_default_dtype() == torch.float32

    def test_state_dict_round_trip(self) -> None:
        """The state after training, saved as a checkpoint stores it, loads into a fresh instance unchanged."""
        precision = self.make_precision()
        check_training_reduces_loss(Fabric(accelerator="cpu", plugins=[precision]))
        state = precision.state_dict()
        assert isinstance(state, dict), f"state_dict() returned {type(state).__name__}, expected a dict"
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        # What fabric.load reads back: safe loading, so the state must be tensors and plain values.
        stored = torch.load(buffer, weights_only=True)
        fresh = self.make_precision()
        fresh.setup("cpu")
        fresh.load_state_dict(stored)
        assert_same_state(fresh.state_dict(), state)
