"""fabric_core.testing: the test kit for plugin authors, and a pytest plugin.

pytest loads it by itself wherever fabric-core is installed (entry point
``fabric_core.testing`` in the ``pytest11`` group); with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``
load it with ``-p fabric_core.testing``. It gives:

* **conformance suites**, one per kind of component: subclass one, implement its
  ``make_*`` method, and pytest runs its checks (:class:`StrategyConformance`,
  :class:`PrecisionConformance`, :class:`LoggerConformance`, :class:`EnvironmentConformance`,
  :class:`AcceleratorConformance`, :class:`CallbackConformance`,
  :class:`HookWrapperConformance`);
* the ``conformance_run`` fixture, which runs the same checks in a real training script on
  N processes with any registered strategy, started by ``fabric.launch()`` or by an
  external launcher (``launcher="torchrun"``);
* the ``fabric_plugins`` fixture (:class:`PluginSandbox`): make a module an add-on for one
  test, found by the real discovery, without installing a distribution;
* helpers that add-on suites share: :func:`isolated_environment` and
  :func:`clean_environment` (no leftover launcher variables or switches),
  :func:`run_script` and :func:`processes_with_marker` (a script run as a real program,
  and what it left running), :func:`find_free_port`, :class:`FakeSite` (fake installed
  distributions);
* checks of an add-on's packaging: :func:`check_entry_point`,
  :func:`check_listed_by_fabric_plugins`, :func:`check_import_is_light`,
  :func:`import_failure` (its library missing or broken) and :func:`run_docs_examples`
  (its docs page's examples).

See docs/guide/testing.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabric_core._lazy import lazy_attributes
from fabric_core.testing.fixtures import conformance_run, fabric_plugins

if TYPE_CHECKING:
    from fabric_core.testing.addons import (
        ImportFailure,
        check_entry_point,
        check_import_is_light,
        check_listed_by_fabric_plugins,
        import_failure,
        run_docs_examples,
    )
    from fabric_core.testing.checks import check_checkpoint_round_trip, check_collectives, check_training_reduces_loss
    from fabric_core.testing.conformance import (
        AcceleratorConformance,
        CallbackConformance,
        EnvironmentConformance,
        HookWrapperConformance,
        LoggerConformance,
        Place,
        PrecisionConformance,
        StrategyConformance,
        StrategyRefusal,
        assert_same_state,
    )
    from fabric_core.testing.distributions import COMPATIBLE, EMPTY_PLUGIN, FakeSite, broken_plugin, strategy_plugin
    from fabric_core.testing.environ import DISCOVERY_SWITCHES, RUN_SETTINGS, clean_environment, isolated_environment
    from fabric_core.testing.processes import ScriptRun, find_free_port, processes_with_marker, run_script
    from fabric_core.testing.sandbox import PluginSandbox
    from fabric_core.testing.scripts import LAUNCHERS, launcher_command, run_training_script

__all__ = [
    "COMPATIBLE",
    "DISCOVERY_SWITCHES",
    "EMPTY_PLUGIN",
    "LAUNCHERS",
    "RUN_SETTINGS",
    "AcceleratorConformance",
    "CallbackConformance",
    "EnvironmentConformance",
    "FakeSite",
    "HookWrapperConformance",
    "ImportFailure",
    "LoggerConformance",
    "Place",
    "PluginSandbox",
    "PrecisionConformance",
    "ScriptRun",
    "StrategyConformance",
    "StrategyRefusal",
    "assert_same_state",
    "broken_plugin",
    "check_checkpoint_round_trip",
    "check_collectives",
    "check_entry_point",
    "check_import_is_light",
    "check_listed_by_fabric_plugins",
    "check_training_reduces_loss",
    "clean_environment",
    "conformance_run",
    "fabric_plugins",
    "find_free_port",
    "import_failure",
    "isolated_environment",
    "launcher_command",
    "processes_with_marker",
    "run_docs_examples",
    "run_script",
    "run_training_script",
    "strategy_plugin",
]

# Lazy (PEP 562): pytest imports this module in every session of an environment with
# fabric-core (pytest11 entry point), so it holds only the fixtures; the rest (conformance
# suites, helpers that import torch) is imported on first use. No ``__dir__``: pytest looks
# for fixtures in ``dir(module)`` and would import everything.
__getattr__, _ = lazy_attributes(
    __name__,
    {
        "AcceleratorConformance": "fabric_core.testing.conformance:AcceleratorConformance",
        "COMPATIBLE": "fabric_core.testing.distributions:COMPATIBLE",
        "CallbackConformance": "fabric_core.testing.conformance:CallbackConformance",
        "DISCOVERY_SWITCHES": "fabric_core.testing.environ:DISCOVERY_SWITCHES",
        "EMPTY_PLUGIN": "fabric_core.testing.distributions:EMPTY_PLUGIN",
        "EnvironmentConformance": "fabric_core.testing.conformance:EnvironmentConformance",
        "FakeSite": "fabric_core.testing.distributions:FakeSite",
        "HookWrapperConformance": "fabric_core.testing.conformance:HookWrapperConformance",
        "ImportFailure": "fabric_core.testing.addons:ImportFailure",
        "LAUNCHERS": "fabric_core.testing.scripts:LAUNCHERS",
        "LoggerConformance": "fabric_core.testing.conformance:LoggerConformance",
        "Place": "fabric_core.testing.conformance:Place",
        "PluginSandbox": "fabric_core.testing.sandbox:PluginSandbox",
        "PrecisionConformance": "fabric_core.testing.conformance:PrecisionConformance",
        "RUN_SETTINGS": "fabric_core.testing.environ:RUN_SETTINGS",
        "ScriptRun": "fabric_core.testing.processes:ScriptRun",
        "StrategyConformance": "fabric_core.testing.conformance:StrategyConformance",
        "StrategyRefusal": "fabric_core.testing.conformance:StrategyRefusal",
        "assert_same_state": "fabric_core.testing.conformance:assert_same_state",
        "broken_plugin": "fabric_core.testing.distributions:broken_plugin",
        "check_checkpoint_round_trip": "fabric_core.testing.checks:check_checkpoint_round_trip",
        "check_collectives": "fabric_core.testing.checks:check_collectives",
        "check_entry_point": "fabric_core.testing.addons:check_entry_point",
        "check_import_is_light": "fabric_core.testing.addons:check_import_is_light",
        "check_listed_by_fabric_plugins": "fabric_core.testing.addons:check_listed_by_fabric_plugins",
        "check_training_reduces_loss": "fabric_core.testing.checks:check_training_reduces_loss",
        "clean_environment": "fabric_core.testing.environ:clean_environment",
        "find_free_port": "fabric_core.testing.processes:find_free_port",
        "import_failure": "fabric_core.testing.addons:import_failure",
        "isolated_environment": "fabric_core.testing.environ:isolated_environment",
        "launcher_command": "fabric_core.testing.scripts:launcher_command",
        "processes_with_marker": "fabric_core.testing.processes:processes_with_marker",
        "run_docs_examples": "fabric_core.testing.addons:run_docs_examples",
        "run_script": "fabric_core.testing.processes:run_script",
        "run_training_script": "fabric_core.testing.scripts:run_training_script",
        "strategy_plugin": "fabric_core.testing.distributions:strategy_plugin",
    },
)
