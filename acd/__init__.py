"""Automatic call distribution: pure, event-fed routing of callers to agents (see docs/acd.md)."""

from acd.config import AcdConfig, load_config, parse_config
from acd.errors import AcdConfigError, ConfigIssue
from acd.router import AgentView, CallView, Router
from acd.stats import LiveStats, QueueSnapshot

__all__ = [
    "AcdConfig",
    "AcdConfigError",
    "AgentView",
    "CallView",
    "ConfigIssue",
    "LiveStats",
    "QueueSnapshot",
    "Router",
    "load_config",
    "parse_config",
]
