"""The accelerator suite: it answers whether its devices exist without failing, and trains where they do."""

from __future__ import annotations

import pytest
import torch

from fabric_core.accelerators.accelerator import Accelerator
from fabric_core.fabric import Fabric
from fabric_core.testing.checks import check_training_reduces_loss

__all__ = ["AcceleratorConformance"]


class AcceleratorConformance:
    """For accelerators. Implement :meth:`make_accelerator`.

    The checks that need the device are skipped where :meth:`~Accelerator.is_available` is
    false, so the suite also runs on a machine without it (and proves that asking is safe).
    """

    #: the ``torch.device`` type of its devices (``"cuda"``, ``"xla"``, ...)
    device_type: str = "cpu"

    def make_accelerator(self) -> Accelerator:
        """A new instance of the accelerator."""
        raise NotImplementedError("Return your Accelerator instance from make_accelerator().")

    @pytest.fixture
    def available(self) -> Accelerator:
        accelerator = self.make_accelerator()
        if not type(accelerator).is_available():
            pytest.skip(f"{type(accelerator).__name__}.is_available() is False on this machine")
        return accelerator

    def test_availability_and_count_never_raise(self) -> None:
        kind = type(self.make_accelerator())
        available, count = kind.is_available(), kind.auto_device_count()
        assert isinstance(available, bool), f"{kind.__name__}.is_available() returned {available!r}, not a bool"
        assert isinstance(count, int) and count >= 0, f"{kind.__name__}.auto_device_count() returned {count!r}"
        if available:
            assert count >= 1, f"{kind.__name__} is available with auto_device_count() == 0"

    def test_parses_devices_into_one_device_per_process(self, available: Accelerator) -> None:
        for devices in (1, "1", "auto"):
            indices = available.parse_devices(devices)
            assert isinstance(indices, list) and all(isinstance(i, int) for i in indices), (devices, indices)
            parallel = available.get_parallel_devices(indices)
            assert len(parallel) == len(indices), f"devices={devices!r}: {indices} -> {parallel}"
            assert all(isinstance(d, torch.device) and d.type == self.device_type for d in parallel), parallel
        assert len(available.parse_devices(1)) == 1
        assert len(available.parse_devices("auto")) == type(available).auto_device_count()

    def test_refuses_a_device_count_that_makes_no_sense(self, available: Accelerator) -> None:
        for devices in (0, "zero", -2):
            with pytest.raises((ValueError, TypeError)):
                available.parse_devices(devices)

    def test_sets_up_and_tears_down_a_device(self, available: Accelerator) -> None:
        (device,) = available.get_parallel_devices(available.parse_devices(1))
        available.setup_device(device)
        available.teardown()

    def test_trains(self, available: Accelerator) -> None:
        check_training_reduces_loss(Fabric(accelerator=available, devices=1))
