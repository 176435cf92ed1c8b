"""Metric loggers. The CSV logger ships with the core; others come as add-ons."""

from fabric_core.loggers.csv_logs import CSVLogger
from fabric_core.loggers.logger import Logger

__all__ = ["CSVLogger", "Logger"]
