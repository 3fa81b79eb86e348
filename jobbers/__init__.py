"""Jobbers: a distributed, asyncio-native task platform built on Redis."""

from jobbers.client import JobbersClient
from jobbers.context import task
from jobbers.models.task import Task, TaskStatus
from jobbers.models.task_config import BackoffStrategy, DeadLetterPolicy, ShutdownPolicy, TaskConfig
from jobbers.recurring_entries import recurring
from jobbers.registry import REQUIRED, register_external_task, register_task
from jobbers.settings import Settings

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
