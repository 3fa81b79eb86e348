"""Log output for every process: text or JSON lines (``LOG_FORMAT``), and the running task's identity
(id, name, queue, attempt, worker id) on every record logged while that task executes.

The identity lives in a context variable that the worker binds inside each task's own asyncio task,
so concurrent tasks never see each other's. ``TaskContextFilter`` copies it onto each record; it is
attached to every handler (the stream handler here, the OTLP handler in ``jobbers.telemetry``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace

#: Record attributes added inside a task's execution (also the JSON keys and OTLP log attributes).
TASK_FIELDS = ("task_id", "task_name", "queue", "attempt", "worker_id", "correlation_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

_active_format: str | None = None

_task: ContextVar[tuple[str, str, str, int, str, str | None] | None] = ContextVar(
    "jobbers_log_task", default=None
)


def bind_task(
    task_id: str, name: str, queue: str, attempt: int, worker_id: str, correlation_id: str | None = None
) -> None:
    """Tag every record logged from now on in the current context with this task's identity (its
    correlation id only when it has one)."""
    _task.set((task_id, name, queue, attempt, worker_id, correlation_id))


class TaskContextFilter(logging.Filter):
    """Adds the bound task's fields, and the current trace and span ids, to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        values = _task.get()
        if values is not None:
            for key, value in zip(TASK_FIELDS, values, strict=True):
                if value is not None:
                    setattr(record, key, value)
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


class TextFormatter(logging.Formatter):
    """The classic one-line format, followed by ``[task <id> <name> queue=… attempt=… worker=…]``
    (and `` correlation=…`` inside the brackets for a task that has a correlation id)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        task_id = getattr(record, "task_id", None)
        if task_id is None:
            return line
        correlation = getattr(record, "correlation_id", None)
        return (
            f"{line} [task {task_id} {getattr(record, 'task_name', '')} queue={getattr(record, 'queue', '')}"
            f" attempt={getattr(record, 'attempt', '')} worker={getattr(record, 'worker_id', '')}"
            + (f" correlation={correlation}]" if correlation else "]")
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, task fields, trace ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in (*TASK_FIELDS, "trace_id", "span_id"):
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str)


def configure_logging(level: str, log_format: str) -> None:
    """Send the process's logs to stderr at ``level``, as ``text`` or ``json`` lines."""
    global _active_format
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(TaskContextFilter())
    logging.basicConfig(level=level.upper(), handlers=[handler])
    _active_format = log_format


def active_log_format() -> str | None:
    """The format ``configure_logging`` set up in this process (None before it ran)."""
    return _active_format


def uvicorn_log_config(log_format: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn's loggers (server and access lines) that writes
    them to stderr in our format, so under ``LOG_FORMAT=json`` every line the manager prints is
    JSON. It configures only ``uvicorn*`` loggers and is self-contained, so it also works in a
    process uvicorn spawns for each of several workers.
    """
    formatter = "jobbers.logs.JsonFormatter" if log_format == "json" else "jobbers.logs.TextFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"jobbers": {"()": formatter}},
        "filters": {"task_context": {"()": "jobbers.logs.TaskContextFilter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "jobbers",
                "filters": ["task_context"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }
