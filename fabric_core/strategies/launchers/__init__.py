"""Launchers: how the other local processes of a multi-process run are started."""

from fabric_core.strategies.launchers.launcher import Launcher
from fabric_core.strategies.launchers.multiprocessing import MultiProcessingLauncher
from fabric_core.strategies.launchers.subprocess_script import SubprocessScriptLauncher

__all__ = ["Launcher", "MultiProcessingLauncher", "SubprocessScriptLauncher"]
