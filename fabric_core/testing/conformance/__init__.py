"""Conformance suites: subclass one in your add-on's tests, implement its ``make_*`` method, and pytest runs its checks.

Each suite is a plain class whose ``test_*`` methods pytest collects in your subclass
(name it ``Test...``). One per kind of component: :class:`StrategyConformance`,
:class:`PrecisionConformance`, :class:`LoggerConformance`, :class:`EnvironmentConformance`,
:class:`AcceleratorConformance`, :class:`CallbackConformance`, :class:`HookWrapperConformance`.
"""

from fabric_core.testing.conformance.accelerator import AcceleratorConformance
from fabric_core.testing.conformance.callback import CallbackConformance
from fabric_core.testing.conformance.environment import EnvironmentConformance, Place
from fabric_core.testing.conformance.hook_wrapper import HookWrapperConformance, StrategyRefusal
from fabric_core.testing.conformance.logger import LoggerConformance
from fabric_core.testing.conformance.precision import PrecisionConformance, assert_same_state
from fabric_core.testing.conformance.strategy import StrategyConformance

__all__ = [
    "AcceleratorConformance",
    "CallbackConformance",
    "EnvironmentConformance",
    "HookWrapperConformance",
    "LoggerConformance",
    "Place",
    "PrecisionConformance",
    "StrategyConformance",
    "StrategyRefusal",
    "assert_same_state",
]
