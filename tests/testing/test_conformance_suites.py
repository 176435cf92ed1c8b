"""The kit's suites run against fabric-core's own components (as add-ons run them against theirs),
and fail for components that break the rules they check (run with pytester, as a plugin author's suite)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fabric_core import hookimpl
from fabric_core.accelerators import CPUAccelerator
from fabric_core.callbacks import LossSpikeDetector, ProgressBar
from fabric_core.environments import ClusterEnvironment, KubeflowEnvironment, SLURMEnvironment, TorchElasticEnvironment
from fabric_core.testing import (
    AcceleratorConformance,
    CallbackConformance,
    EnvironmentConformance,
    HookWrapperConformance,
    Place,
)

pytest_plugins = ["pytester"]


class TestTorchElasticConforms(EnvironmentConformance):
    registered_name = "torchelastic"

    def make_environment(self) -> ClusterEnvironment:
        return TorchElasticEnvironment()

    def variables(self, place: Place) -> dict[str, str]:
        return {
            "TORCHELASTIC_RUN_ID": "conformance",
            "WORLD_SIZE": str(place.world_size),
            "RANK": str(place.global_rank),
            "LOCAL_RANK": str(place.local_rank),
            "GROUP_RANK": str(place.node_rank),
            "LOCAL_WORLD_SIZE": str(min(place.world_size, self.processes_per_node)),
            "MASTER_ADDR": "10.0.0.1",
            "MASTER_PORT": "29400",
        }


class TestSLURMConforms(EnvironmentConformance):
    registered_name = "slurm"

    def make_environment(self) -> ClusterEnvironment:
        return SLURMEnvironment()

    def variables(self, place: Place) -> dict[str, str]:
        return {
            "SLURM_NTASKS": str(place.world_size),
            "SLURM_PROCID": str(place.global_rank),
            "SLURM_LOCALID": str(place.local_rank),
            "SLURM_NODEID": str(place.node_rank),
            "SLURM_NODELIST": "node[1-2]",
            "SLURM_JOB_ID": "123456",
            "SLURM_JOB_NAME": "train",
            "SLURM_NTASKS_PER_NODE": str(min(place.world_size, self.processes_per_node)),
        }


class TestKubeflowConforms(EnvironmentConformance):
    processes_per_node = 1  # one process per pod
    detectable = False  # a PyTorchJob must be passed explicitly

    def make_environment(self) -> ClusterEnvironment:
        return KubeflowEnvironment()

    def variables(self, place: Place) -> dict[str, str]:
        return {
            "WORLD_SIZE": str(place.world_size),
            "RANK": str(place.global_rank),
            "MASTER_ADDR": "master-0",
            "MASTER_PORT": "23456",
        }


class TestCPUAcceleratorConforms(AcceleratorConformance):
    def make_accelerator(self) -> CPUAccelerator:
        return CPUAccelerator()


class TestProgressBarConforms(CallbackConformance):
    def make_callback(self) -> Any:
        return ProgressBar(use_tqdm=False)


class TestLossSpikeDetectorConforms(CallbackConformance):
    def make_callback(self) -> Any:
        return LossSpikeDetector()


class BackwardTimer:
    """Times every backward pass (the plugin tutorial's wrapper, on every single-owner hook)."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {}

    def _timed(self, hook: str) -> Any:
        start = time.perf_counter()
        try:
            return (yield)
        finally:
            self.seconds.setdefault(hook, []).append(time.perf_counter() - start)

    @hookimpl(wrapper=True)
    def fabric_setup_model(self) -> Any:
        return (yield from self._timed("setup_model"))

    @hookimpl(wrapper=True)
    def fabric_setup_optimizer(self) -> Any:
        return (yield from self._timed("setup_optimizer"))

    @hookimpl(wrapper=True)
    def fabric_backward(self) -> Any:
        return (yield from self._timed("backward"))

    @hookimpl(wrapper=True)
    def fabric_optimizer_step(self) -> Any:
        return (yield from self._timed("optimizer_step"))

    @hookimpl(wrapper=True)
    def fabric_save_checkpoint(self) -> Any:
        return (yield from self._timed("save"))

    @hookimpl(wrapper=True)
    def fabric_load_checkpoint(self) -> Any:
        return (yield from self._timed("load"))


class TestTimingWrapperConforms(HookWrapperConformance):
    def make_plugin(self) -> object:
        return BackwardTimer()


# -- the suites catch what they promise to catch -----------------------------------------------------

BROKEN = '''
import torch
from fabric_core import hookimpl
from fabric_core.precision import Precision
from fabric_core.environments import TorchElasticEnvironment
from fabric_core.testing import EnvironmentConformance, HookWrapperConformance, PrecisionConformance


class ForgetfulPrecision(Precision):
    """Keeps a step counter but never restores it."""

    def __init__(self):
        self.steps = 0

    def optimizer_step(self, optimizer, **kwargs):
        self.steps += 1
        return optimizer.step(**kwargs)

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state_dict):
        pass


class TestForgetfulPrecision(PrecisionConformance):
    def make_precision(self):
        return ForgetfulPrecision()


class Swallower:
    """A wrapper that hides the strategy's errors and drops what it returns."""

    @hookimpl(wrapper=True)
    def fabric_backward(self):
        try:
            yield
        except Exception:
            pass
        return True

    @hookimpl(wrapper=True)
    def fabric_optimizer_step(self):
        yield
        return None


class TestSwallower(HookWrapperConformance):
    def make_plugin(self):
        return Swallower()


class TestEnvironmentThatMisreadsTheNode(EnvironmentConformance):
    def make_environment(self):
        return TorchElasticEnvironment()

    def variables(self, place):
        return {
            "TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": str(place.world_size), "RANK": str(place.global_rank),
            "LOCAL_RANK": str(place.local_rank), "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "a", "MASTER_PORT": "1234",
        }  # no GROUP_RANK: every process believes it is on node 0
'''


@pytest.mark.timeout(300)
def test_the_suites_fail_components_that_break_their_rules(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_broken=BROKEN)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: state_dict()*'steps'*is 0, expected 25",
            "*AssertionError: optimizer.step(closure) returned None, not the closure's loss",
            "*DID NOT RAISE*StrategyRefusal*",
            "*reports Place(world_size=4, global_rank=2, local_rank=0, node_rank=0) for the process at*node_rank=1)",
        ]
    )
    assert outcomes["failed"] == 4, result.stdout.str()
