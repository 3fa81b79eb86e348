"""The running task's own handle: ``from jobbers.context import task`` then ``task.heartbeat()``.

Inside a task function, ``task`` refers to the task being executed in the current asyncio
context, so concurrent tasks in one worker each see their own record.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunningTask:
    """What a task function may know about itself while it runs."""

    id: str
    name: str
    version: int
    queue: str
    params: dict[str, Any]
    retry_attempt: int
    #: Monotonic time of the last ``heartbeat()``; the worker writes it to Redis (with Redis
    #: time) on its next lease renewal once it changed, so a heartbeat costs no round trip of its own.
    last_heartbeat: float | None = field(default=None)

    def heartbeat(self) -> None:
        """Tell Jobbers this task is alive: resets its ``max_heartbeat_interval`` stall clock."""
        self.last_heartbeat = time.monotonic()


_current: ContextVar[RunningTask] = ContextVar("jobbers_current_task")


def set_current_task(running: RunningTask) -> None:
    """Bind ``running`` to the current context (the worker calls this in the task's own context)."""
    _current.set(running)


def current_task() -> RunningTask:
    """The task running in this context; raises ``RuntimeError`` outside a task."""
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("jobbers.context.task is only available inside a running task") from None


class _TaskProxy:
    """Module-level ``task`` that forwards to the task of the current context."""

    def heartbeat(self) -> None:
        current_task().heartbeat()

    def __getattr__(self, name: str) -> Any:
        return getattr(current_task(), name)


task = _TaskProxy()
