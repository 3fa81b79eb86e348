"""Jobbers: a distributed, asyncio-native task platform built on Redis.

The names below are imported on first use (PEP 562), not with the package: every process imports
``jobbers`` first, and a worker that never builds a ``JobbersClient`` should not load it (and what
it imports) at each start. ``from jobbers import register_task`` loads only the registry.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobbers.client import JobbersClient
    from jobbers.context import task
    from jobbers.models.task import Task, TaskStatus
    from jobbers.models.task_config import BackoffStrategy, DeadLetterPolicy, ShutdownPolicy, TaskConfig
    from jobbers.recurring_entries import recurring
    from jobbers.registry import REQUIRED, register_external_task, register_task
    from jobbers.settings import Settings

#: Public name -> the module that defines it.
_LAZY = {
    "JobbersClient": "jobbers.client",
    "task": "jobbers.context",
    "Task": "jobbers.models.task",
    "TaskStatus": "jobbers.models.task",
    "BackoffStrategy": "jobbers.models.task_config",
    "DeadLetterPolicy": "jobbers.models.task_config",
    "ShutdownPolicy": "jobbers.models.task_config",
    "TaskConfig": "jobbers.models.task_config",
    "recurring": "jobbers.recurring_entries",
    "REQUIRED": "jobbers.registry",
    "register_external_task": "jobbers.registry",
    "register_task": "jobbers.registry",
    "Settings": "jobbers.settings",
}

__all__ = [
    "REQUIRED",
    "BackoffStrategy",
    "DeadLetterPolicy",
    "JobbersClient",
    "Settings",
    "ShutdownPolicy",
    "Task",
    "TaskConfig",
    "TaskStatus",
    "recurring",
    "register_external_task",
    "register_task",
    "task",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        # Not one of ours: ``from jobbers import telemetry`` then imports the submodule.
        raise AttributeError(f"module 'jobbers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
