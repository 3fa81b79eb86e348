"""The metric catalogue: every instrument, with the names, units and labels the operations guide
lists, and the helpers that record what several processes count alike.

Measurements cost a dict update each (``instruments``); the SDK collects and exports them on its
own thread. Each histogram is recorded together with a counter, so a collection that has
histogram points is never empty (the SDK skips exporting empty collections).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from jobbers.models.outcomes import CancelKind
from jobbers.telemetry.instruments import Counter, Gauge, Histogram

#: Instrumentation scope of every instrument and span.
SCOPE = "jobbers"
#: Upper bounds (ms) of the duration histograms' buckets: sub-millisecond no-ops to hour-long jobs.
DURATION_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000,
    30_000, 60_000, 300_000, 900_000, 3_600_000,
)  # fmt: skip

_QTS = ("queue", "task", "status")
_QTV = ("queue", "task", "version")
_QRT = ("queue", "role", "task")
_MS = DURATION_BUCKETS_MS

# Worker: outcomes (recorded once the outcome is written, so a fenced-off write is not counted).
TASKS_PROCESSED = Counter("tasks_processed", "{task}", "Tasks that reached a terminal status", _QTS)
TASK_EXECUTION_TIME = Histogram(
    "task_execution_time", "ms", "Time from started_at to completed_at", _QTS, _MS
)
TASK_END_TO_END_LATENCY = Histogram(
    "task_end_to_end_latency", "ms", "Time from submitted_at to completed_at", _QTS, _MS
)
TASKS_RETRIED = Counter("tasks_retried", "{task}", "Retry events", _QTV)
TASKS_DEAD_LETTERED = Counter("tasks_dead_lettered", "{task}", "Tasks moved to the dead letter queue", _QTV)
LATE_WRITES_REJECTED = Counter(
    "late_writes_rejected",
    "{write}",
    "Outcomes refused because the task's lease had been recovered (the task ran elsewhere)",
    ("queue", "task"),
)
# Worker: claiming.
TIME_IN_QUEUE = Histogram(
    "time_in_queue",
    "ms",
    "Time from becoming ready (submitted, or promoted when scheduled) to pickup",
    _QRT,
    _MS,
)
TASKS_SELECTED = Counter("tasks_selected", "{task}", "Tasks pulled from queues", _QRT)
TASKS_IN_FLIGHT = Counter(
    "tasks_in_flight", "{task}", "Tasks running in this worker", ("queue", "role"), up_down=True
)
# Manager and Python client.
CANCELLATIONS_REQUESTED = Counter(
    "cancellations_requested", "{task}", "Cancellations accepted (queued ones end at once)", ("queue", "task")
)
# Scheduler and cleaner.
STALLS_RECOVERED = Counter(
    "stalls_recovered",
    "{task}",
    "Tasks taken back from a dead or silent worker; outcome: requeued, stalled, cancelled or hung",
    ("queue", "outcome"),
)
TASKS_PROMOTED = Counter(
    "tasks_promoted", "{task}", "Scheduled and retry-delayed tasks made ready", ("queue",)
)
SCHEDULER_LAG = Histogram(
    "scheduler_lag",
    "ms",
    "Per promotion, how late past its run_at the most overdue task was",
    ("queue",),
    _MS,
)
QUEUE_DEPTH = Gauge("queue_depth", "{task}", "Ready tasks waiting in the queue", ("queue",))
QUEUE_OLDEST_TASK_AGE = Gauge(
    "queue_oldest_task_age", "ms", "How long the oldest ready task has been waiting", ("queue",)
)

INSTRUMENTS: tuple[Counter | Gauge | Histogram, ...] = (
    TASKS_PROCESSED, TASK_EXECUTION_TIME, TASK_END_TO_END_LATENCY, TASKS_RETRIED, TASKS_DEAD_LETTERED,
    LATE_WRITES_REJECTED, TIME_IN_QUEUE, TASKS_SELECTED, TASKS_IN_FLIGHT, CANCELLATIONS_REQUESTED,
    STALLS_RECOVERED, TASKS_PROMOTED, SCHEDULER_LAG, QUEUE_DEPTH, QUEUE_OLDEST_TASK_AGE,
)  # fmt: skip


class _Cancelled(Protocol):
    @property
    def outcome(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def name(self) -> str: ...


def record_cancellations(outcomes: Iterable[_Cancelled]) -> None:
    """Count the accepted cancellations (``cancelled`` or ``requested``) among cancel outcomes."""
    for o in outcomes:
        if CancelKind(o.outcome).accepted:
            CANCELLATIONS_REQUESTED.add((o.queue, o.name))


class _Recovered(Protocol):
    @property
    def queue(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def dead_lettered(self) -> bool: ...


def record_stalls(outcome: str, tasks: Iterable[_Recovered]) -> None:
    """Count tasks taken back from a worker, and those of them that went to the dead letter queue."""
    for t in tasks:
        STALLS_RECOVERED.add((t.queue, outcome))
        if outcome in ("stalled", "hung") and t.dead_lettered:
            TASKS_DEAD_LETTERED.add((t.queue, t.name, str(t.version)))
