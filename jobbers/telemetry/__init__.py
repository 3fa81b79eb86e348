"""OpenTelemetry for every process, in four rooms:

- ``metrics``: the metric catalogue (every instrument, named in one place) and recording helpers;
- ``instruments``: the cheap in-process instruments the catalogue is made of;
- ``tracing``: the trace context carried on a task, and its submit/execute spans;
- ``providers``: installing the OTLP providers from the standard ``OTEL_*`` variables.

The names other modules use are re-exported here (``from jobbers import telemetry``).
"""

from jobbers.telemetry.metrics import (
    CANCELLATIONS_REQUESTED,
    DURATION_BUCKETS_MS,
    INSTRUMENTS,
    LATE_WRITES_REJECTED,
    QUEUE_DEPTH,
    QUEUE_OLDEST_TASK_AGE,
    SCHEDULER_LAG,
    SCOPE,
    STALLS_RECOVERED,
    TASK_END_TO_END_LATENCY,
    TASK_EXECUTION_TIME,
    TASKS_DEAD_LETTERED,
    TASKS_IN_FLIGHT,
    TASKS_PROCESSED,
    TASKS_PROMOTED,
    TASKS_RETRIED,
    TASKS_SELECTED,
    TIME_IN_QUEUE,
    record_cancellations,
    record_stalls,
)
from jobbers.telemetry.providers import (
    SHUTDOWN_TIMEOUT_SECONDS,
    Telemetry,
    export_interval_seconds,
    setup_telemetry,
)
from jobbers.telemetry.tracing import TaskSpan, current_traceparent, submit_span, tracing_enabled

__all__ = [
    "CANCELLATIONS_REQUESTED",
    "DURATION_BUCKETS_MS",
    "INSTRUMENTS",
    "LATE_WRITES_REJECTED",
    "QUEUE_DEPTH",
    "QUEUE_OLDEST_TASK_AGE",
    "SCHEDULER_LAG",
    "SCOPE",
    "SHUTDOWN_TIMEOUT_SECONDS",
    "STALLS_RECOVERED",
    "TASKS_DEAD_LETTERED",
    "TASKS_IN_FLIGHT",
    "TASKS_PROCESSED",
    "TASKS_PROMOTED",
    "TASKS_RETRIED",
    "TASKS_SELECTED",
    "TASK_END_TO_END_LATENCY",
    "TASK_EXECUTION_TIME",
    "TIME_IN_QUEUE",
    "TaskSpan",
    "Telemetry",
    "current_traceparent",
    "export_interval_seconds",
    "record_cancellations",
    "record_stalls",
    "setup_telemetry",
    "submit_span",
    "tracing_enabled",
]
