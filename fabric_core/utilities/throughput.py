"""Measuring training speed: batches, samples, items and FLOPs per second, and MFU.

:class:`Throughput` turns running totals (elapsed time, batches, samples, ...) into rates
over a sliding window; :class:`ThroughputMonitor` does the same for a Fabric run and logs
them with ``fabric.log_dict`` on global rank 0. :func:`measure_flops` counts the FLOPs of a
forward (and backward) pass. The metric names are Lightning's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from fabric_core.utilities.rank_zero import rank_zero_only

if TYPE_CHECKING:
    from fabric_core.fabric import Fabric

__all__ = ["Throughput", "ThroughputMonitor", "get_available_flops", "measure_flops"]

Metrics = dict[str, int | float]


class _IncreasingWindow(deque[float]):
    """A bounded window of running totals that must never decrease."""

    def __init__(self, name: str, maxlen: int) -> None:
        super().__init__(maxlen=maxlen)
        self._name = name

    def add(self, value: float) -> None:
        if self and value <= self[-1] and self._name == "time":
            raise ValueError(
                f"Throughput.update(time={value}): time must increase with every call (the last was {self[-1]}). "
                "Pass the total time elapsed since the start, not the time of one step."
            )
        if self and value < self[-1]:
            raise ValueError(
                f"Throughput.update({self._name}={value}): {self._name} is a running total and must not decrease "
                f"(the last was {self[-1]})."
            )
        self.append(value)


class Throughput:
    """Rates from running totals, over the last ``window_size`` updates.

    :meth:`compute` always returns ``time``, ``batches``, ``samples`` (and ``lengths`` when
    given); once the window is full also ``device/batches_per_sec``,
    ``device/samples_per_sec`` (``device/items_per_sec`` with lengths), and with FLOPs
    ``device/flops_per_sec`` and, given ``available_flops``, ``device/mfu``. With a world
    size above 1 the global rates (``batches_per_sec``, ``samples_per_sec``,
    ``items_per_sec``, ``flops_per_sec``) are added, assuming every device is alike.

    :param available_flops: the theoretical FLOPs per second of one device, for MFU.
    :param world_size: the number of devices.
    :param window_size: how many updates the rates span (at least 2).
    :param separator: joins ``device`` and the metric name.
    """

    def __init__(
        self, available_flops: float | None = None, world_size: int = 1, window_size: int = 100, separator: str = "/"
    ) -> None:
        if world_size < 1:
            raise ValueError(f"Throughput(world_size={world_size}): the world size must be 1 or more.")
        if window_size < 2:
            raise ValueError(f"Throughput(window_size={window_size}): a rate needs a window of at least 2 updates.")
        self.available_flops = available_flops
        self.world_size = world_size
        self.separator = separator
        self._time = _IncreasingWindow("time", window_size)
        self._batches = _IncreasingWindow("batches", window_size)
        self._samples = _IncreasingWindow("samples", window_size)
        self._lengths = _IncreasingWindow("lengths", window_size)
        self._flops: deque[float] = deque(maxlen=window_size)

    def update(
        self, *, time: float, batches: int, samples: int, lengths: int | None = None, flops: int | None = None
    ) -> None:
        """Record the totals so far on this device.

        :param time: seconds since the start (increasing).
        :param batches: batches so far; ``samples`` must be at least as many.
        :param lengths: items (tokens, ...) so far, at least ``samples``; give it every time or never.
        :param flops: FLOPs of this device since the previous update.
        """
        if samples < batches:
            raise ValueError(f"Throughput.update(samples={samples}, batches={batches}): samples must be >= batches.")
        if lengths is not None and lengths < samples:
            raise ValueError(f"Throughput.update(lengths={lengths}, samples={samples}): lengths must be >= samples.")
        if lengths is not None and len(self._lengths) != len(self._samples):
            raise RuntimeError(
                "Throughput.update(lengths=...): lengths were left out of earlier updates; pass them every time."
            )
        self._time.add(time)
        self._batches.add(batches)
        self._samples.add(samples)
        if lengths is not None:
            self._lengths.add(lengths)
        if flops is not None:
            self._flops.append(flops * self.world_size)

    def compute(self) -> Metrics:
        """The totals and the rates over the window (see the class docstring for the names)."""
        if not self._time:
            raise RuntimeError("Throughput.compute() was called before any update().")
        metrics: Metrics = {"time": self._time[-1], "batches": self._batches[-1], "samples": self._samples[-1]}
        if self._lengths:
            metrics["lengths"] = self._lengths[-1]
        device = f"device{self.separator}"
        several = self.world_size > 1
        if len(self._time) == self._time.maxlen:
            elapsed = self._time[-1] - self._time[0]
            rates = {
                "batches_per_sec": (self._batches[-1] - self._batches[0]) / elapsed,
                "samples_per_sec": (self._samples[-1] - self._samples[0]) / elapsed,
            }
            if len(self._lengths) == self._lengths.maxlen:
                rates["items_per_sec"] = (self._lengths[-1] - self._lengths[0]) / elapsed
            for name, rate in rates.items():
                metrics[device + name] = rate
                if several:
                    metrics[name] = rate * self.world_size
        if len(self._flops) == self._flops.maxlen:
            elapsed = self._time[-1] - self._time[0]
            # The first entry's FLOPs were spent before the window's first time stamp.
            flops_per_sec = (sum(self._flops) - self._flops[0]) / elapsed
            if several:
                metrics["flops_per_sec"] = flops_per_sec
            metrics[device + "flops_per_sec"] = flops_per_sec / self.world_size
            if self.available_flops:
                metrics[device + "mfu"] = flops_per_sec / self.world_size / self.available_flops
        return metrics

    def reset(self) -> None:
        """Forget every update."""
        for window in (self._time, self._batches, self._samples, self._lengths, self._flops):
            window.clear()


class ThroughputMonitor(Throughput):
    """:class:`Throughput` for a Fabric run: world size and MFU baseline from ``fabric``,
    updates on global rank 0 only, and :meth:`compute_and_log` logs through Fabric's loggers.

    :param fabric: the run (after ``fabric.launch()``, so the world size is known).
    :param kwargs: :class:`Throughput`'s ``window_size`` and ``separator``.
    """

    def __init__(self, fabric: Fabric, **kwargs: Any) -> None:
        dtype = _compute_dtype(getattr(fabric.strategy.precision, "precision", "32-true"))
        super().__init__(
            available_flops=get_available_flops(fabric.device, dtype), world_size=fabric.world_size, **kwargs
        )
        self._fabric = fabric
        #: the step of the last :meth:`compute_and_log` (-1 before the first)
        self.step = -1
        self.update = rank_zero_only(self.update)  # type: ignore[method-assign]
        self.reset = rank_zero_only(self.reset)  # type: ignore[method-assign]

    def compute(self) -> Metrics:
        """As :meth:`Throughput.compute` on global rank 0; ``{}`` on the other ranks."""
        if rank_zero_only.rank != 0:  # type: ignore[attr-defined]
            return {}
        return super().compute()

    def compute_and_log(self, step: int | None = None) -> Metrics:
        """Compute the metrics and ``fabric.log_dict`` them at ``step`` (the previous step + 1 by default)."""
        self.step = self.step + 1 if step is None else step
        metrics = self.compute()
        if metrics:
            self._fabric.log_dict(metrics, step=self.step)
        return metrics


def measure_flops(
    model: torch.nn.Module,
    forward_fn: Callable[[], torch.Tensor],
    loss_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> int:
    """The FLOPs of ``forward_fn()`` (and of ``loss_fn(output).backward()`` when given).

    Counted with ``torch.utils.flop_counter``; building the model and inputs on the meta
    device (``with torch.device("meta"):``) costs no memory and no compute.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        output = forward_fn()
        if loss_fn is not None:
            loss_fn(output).backward()  # type: ignore[no-untyped-call]
    return int(counter.get_total_flops())


#: Peak dense FLOPs per second of a few accelerators (vendor data sheets), by dtype.
_PEAK_FLOPS: dict[str, dict[torch.dtype, float]] = {
    "h100": {torch.float32: 67e12, torch.bfloat16: 989.5e12, torch.float16: 989.5e12},
    "h200": {torch.float32: 67e12, torch.bfloat16: 989.5e12, torch.float16: 989.5e12},
    "a100": {torch.float32: 19.5e12, torch.bfloat16: 312e12, torch.float16: 312e12},
    "a10g": {torch.float32: 31.2e12, torch.bfloat16: 125e12, torch.float16: 125e12},
    "l4": {torch.float32: 30.3e12, torch.bfloat16: 121e12, torch.float16: 121e12},
    "v100": {torch.float32: 15.7e12, torch.float16: 125e12},
    "t4": {torch.float32: 8.1e12, torch.float16: 65e12},
}


def get_available_flops(device: torch.device, dtype: torch.dtype | str) -> int | None:
    """The peak FLOPs per second of ``device`` in ``dtype``, or ``None`` when unknown (CPUs,
    GPUs not in the table): MFU is then left out."""
    if device.type != "cuda" or not isinstance(dtype, torch.dtype):
        return None
    name = torch.cuda.get_device_name(device).lower()
    for model, by_dtype in _PEAK_FLOPS.items():
        if model in name.split() or f" {model}" in name:
            peak = by_dtype.get(dtype)
            return int(peak) if peak is not None else None
    return None


def _compute_dtype(precision: str) -> torch.dtype:
    if precision.startswith("bf16"):
        return torch.bfloat16
    if precision.startswith("16"):
        return torch.float16
    if precision.startswith("64"):
        return torch.float64
    return torch.float32
