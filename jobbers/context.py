"""The running task's own handle: ``from jobbers.context import task`` then ``task.heartbeat()``.

Inside a task function, ``task`` refers to the task being executed in the current asyncio
context, so concurrent tasks in one worker each see their own record. ``task.progress(3, 10,
"pages")`` reports how far it got (shown by ``/task-status`` and the admin UI).
"""

from __future__ import annotations

import math
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from jobbers.workflows import Workflow, merge


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

    #: What ``fan_out`` asked for: written with this task's completion.
    fanned_out: Workflow | None = None
    #: The latest ``progress()`` report (current, total, message): the worker writes it with its
    #: next lease renewal (within about a second) once it changed, so a report costs no round trip.
    last_progress: tuple[float, float | None, str | None] | None = None

    def heartbeat(self) -> None:
        """Tell Jobbers this task is alive: resets its ``max_heartbeat_interval`` stall clock."""
        self.last_heartbeat = time.monotonic()

    def progress(self, current: float, total: float | None = None, message: str | None = None) -> None:
        """Report how far this task got: ``current`` of ``total`` (when known), and a short
        ``message``. Cheap: nothing is sent now; the latest report reaches ``/task-status``
        within about a second, and the event log gets a ``progress`` event at most every 5 seconds
        per task. A report is also a heartbeat."""
        self.last_progress = check_progress(current, total, message)
        self.heartbeat()

    def fan_out(self, children: list[Workflow], collector: Workflow) -> None:
        """Spawn ``children`` (built with ``jobbers.workflows``: ``task.s(...)``, chains, groups)
        after this workflow node, and ``collector`` after all of them; what came after this node
        then waits for ``collector`` instead. Nothing is written until this task completes: the
        new nodes join the run in the same script call that writes its completion, so a crash
        can never leave half a fan-out, and a failed (or retried) attempt spawns nothing. Their
        node ids are this node's id, a dot, then their own (``fetch.page``, ``fetch.page-2``);
        they run in this node's queue. A task that is no workflow node fails with
        ``FanOutError`` when it completes. Called again, the latest call wins."""
        if not children:
            raise ValueError("fan_out() needs at least one child")
        if not all(isinstance(c, Workflow) for c in [*children, collector]):
            raise TypeError("fan_out() takes workflows: task.s(...), chain(...), group(...)")
        if len(collector.tails) != 1:
            raise ValueError("fan_out()'s collector must end in one step (a task.s(), or a chain)")
        self.fanned_out = merge(*children, into=collector)


#: The longest ``progress()`` message (characters).
MAX_PROGRESS_MESSAGE = 500


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"progress() {name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"progress() {name} must be a finite number of at least 0, not {value!r}")
    return value


def check_progress(
    current: object, total: object = None, message: object = None
) -> tuple[float, float | None, str | None]:
    """A ``progress()`` report, checked: numbers at least 0 (``total`` above 0), a message of at
    most ``MAX_PROGRESS_MESSAGE`` characters."""
    value = _number("current", current)
    whole = None if total is None else _number("total", total)
    if whole is not None and whole <= 0:
        raise ValueError(f"progress() total must be above 0, not {total!r}")
    if message is not None:
        if not isinstance(message, str):
            raise TypeError(f"progress() message must be a string, not {type(message).__name__}")
        if len(message) > MAX_PROGRESS_MESSAGE:
            raise ValueError(f"progress() message must be at most {MAX_PROGRESS_MESSAGE} characters")
    return value, whole, message


def progress_text(current: float, total: float | None, message: str | None) -> str:
    """A progress report as the event log says it: ``3/10 (30%) pages``."""
    text = f"{current:g}"
    if total is not None:
        text += f"/{total:g} ({current / total:.0%})"
    return f"{text} {message}" if message else text


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

    def fan_out(self, children: list[Workflow], collector: Workflow) -> None:
        current_task().fan_out(children, collector)

    def progress(self, current: float, total: float | None = None, message: str | None = None) -> None:
        current_task().progress(current, total, message)

    def __getattr__(self, name: str) -> Any:
        return getattr(current_task(), name)


task = _TaskProxy()
