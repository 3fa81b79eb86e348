"""The columns of each ``jobbers`` listing, and how a record becomes a row. Pure: no I/O.

The task id is the first column of every listing of tasks, so ``cut -f1`` of any of them gives
ids that ``cancel``, ``resubmit`` and ``show`` take (they skip the header's ``id``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from jobbers.models.task import TaskStatus
from jobbers.state.queries import Listed
from jobbers.state.records import QueueStats, TaskRef, is_valid_task_id
from jobbers.state.stats import QueueCounts, Snapshot, WorkerRecord, outcomes_by_queue
from jobbers.state.transitions import Transition

#: The header word of the id column: commands that take ids skip it.
ID_HEADER = "id"

TASK_COLUMNS = (
    "id",
    "status",
    "queue",
    "name",
    "version",
    "attempt",
    "status_at",
    "submitted_at",
    "worker",
    "error",
)
#: What a table shows of a task (``show`` has the rest).
TASK_TABLE_COLUMNS = ("id", "status", "queue", "name", "attempt", "status_at", "error")
DEAD_LETTER_COLUMNS = ("id", "status", "queue", "name", "version", "attempt", "dead_lettered_at", "error")
OUTCOME_COLUMNS = ("id", "outcome", "status")
#: Minutes of terminal outcomes the queue listing counts (``completed_5m``, ``failed_5m``).
RATE_MINUTES = 5
QUEUE_COLUMNS = (
    "queue",
    "paused",
    "ready",
    "blocked",
    "scheduled",
    "running",
    "dead_lettered",
    "latency_s",
    "completed_5m",
    "failed_5m",
)
DEAD_LETTER_TABLE_COLUMNS = ("id", "status", "queue", "name", "attempt", "dead_lettered_at", "error")
WORKER_COLUMNS = ("id", "role", "queues", "running", "slots", "processed", "started_at", "last_seen_s")
TRANSITION_COLUMNS = ("at", "id", "queue", "name", "from", "to")

NUMERIC = frozenset(
    {
        "version",
        "attempt",
        "ready",
        "blocked",
        "scheduled",
        "running",
        "dead_lettered",
        "latency_s",
        "completed_5m",
        "failed_5m",
        "slots",
        "processed",
        "last_seen_s",
    }
)


def _at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def task_row(item: Listed) -> dict[str, Any]:
    """A task of a listing: ``status_at`` is when it entered its status (the listing's order)."""
    t = item.task
    return {
        "id": t.id,
        "status": t.status.value,
        "queue": t.queue,
        "name": t.name,
        "version": t.version,
        "attempt": t.retry_attempt,
        "status_at": _at(item.score_ms),
        "submitted_at": t.submitted_at,
        "worker": t.worker_id,
        "error": t.error,
    }


def dead_letter_row(item: Listed) -> dict[str, Any]:
    """A dead letter: ``dead_lettered_at`` is when it entered the DLQ (the listing's order)."""
    t = item.task
    return {
        "id": t.id,
        "status": t.status.value,
        "queue": t.queue,
        "name": t.name,
        "version": t.version,
        "attempt": t.retry_attempt,
        "dead_lettered_at": _at(item.score_ms),
        "error": t.error,
    }


def outcome_row(task_id: str, outcome: str, status: TaskStatus | str | None) -> dict[str, Any]:
    """What an action (cancel, resubmit, purge) did to one task."""
    return {"id": task_id, "outcome": outcome, "status": (str(status) if status else None)}


def queue_rows(snapshot: Snapshot, control: Mapping[str, QueueStats]) -> list[dict[str, Any]]:
    """One row per queue of the snapshot, with whether it is paused, its tasks blocked on a
    concurrency key, the age of its oldest ready task (``latency_s``) and its terminal outcomes
    over the snapshot's minutes (take it with ``RATE_MINUTES``)."""
    ended = outcomes_by_queue(snapshot.throughput)
    return [_queue_row(q, control.get(q.queue), ended.get(q.queue, {})) for q in snapshot.queues]


def _queue_row(q: QueueCounts, control: QueueStats | None, ended: Mapping[str, int]) -> dict[str, Any]:
    latency_ms = control.oldest_age_ms if control else 0
    return {
        "queue": q.queue,
        "paused": "yes" if control and control.paused else "",
        "ready": q.ready,
        "blocked": control.blocked if control else 0,
        "scheduled": q.scheduled,
        "running": q.running,
        "dead_lettered": q.dead_lettered,
        "latency_s": round(latency_ms / 1000, 3),
        "completed_5m": ended.get(TaskStatus.COMPLETED.value, 0),
        "failed_5m": ended.get(TaskStatus.FAILED.value, 0),
    }


def worker_row(worker: WorkerRecord, now_ms: int) -> dict[str, Any]:
    """A live worker; ``last_seen_s`` is how long ago (by Redis time) it last reported."""
    return {
        "id": worker.id,
        "role": worker.role,
        "queues": worker.queues,
        "running": worker.running,
        "slots": worker.slots,
        "processed": worker.processed,
        "started_at": _at(worker.first_seen_ms),
        "last_seen_s": round(max(now_ms - worker.last_seen_ms, 0) / 1000, 1),
    }


def transition_row(change: Transition, ref: TaskRef | None) -> dict[str, Any]:
    """A status change; queue and name are empty when the record is already gone (pruned)."""
    return {
        "at": _at(change.at_ms),
        "id": change.task_id,
        "queue": ref.queue if ref else None,
        "name": ref.name if ref else None,
        "from": change.old.value,
        "to": change.new.value,
    }


def task_fields(shown: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A task as ``(field, text)`` pairs for ``show`` (``shown`` is its JSON as the API shows it):
    JSON values pretty-printed over several lines, the error history one attempt a line."""
    out: list[tuple[str, str]] = []
    for field, value in shown.items():
        if field == "omitted" and not value:
            continue
        if field == "errors":
            text = "\n".join(
                f"attempt {e.get('attempt')} at {e.get('at')}: {e.get('exception_type')}: {e.get('message')}"
                for e in value
            )
        elif field == "events":
            text = "\n".join(
                " ".join(str(part) for part in (e.get("at"), e.get("type"), f"attempt {e.get('attempt')}",
                                                e.get("worker_id"), e.get("detail")) if part)
                for e in value
            )
        elif isinstance(value, dict | list):
            text = json.dumps(value, indent=2, ensure_ascii=False) if value else json.dumps(value)
        elif value is None:
            text = ""
        elif isinstance(value, bool):
            text = "yes" if value else "no"
        else:
            text = str(value)
        out.append((field, text))
    return out


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: dt.datetime) -> dt.datetime:
    """``--since``: a duration back from ``now`` (``90s``, ``15m``, ``2h``, ``7d``, ``1w``), an ISO
    8601 date or time (UTC unless it says otherwise), or epoch seconds. Raises ``ValueError``."""
    value = text.strip()
    match = _DURATION.match(value)
    if match:
        return now - dt.timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    try:
        return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use a duration back from now (90s, 15m, 2h, 7d, 1w), an ISO 8601 "
            "date or time (2025-01-31, 2025-01-31T12:00:00Z) or epoch seconds"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def task_ids(words: Sequence[str]) -> list[str]:
    """Task ids from the command line (upper-cased, each once), skipping the header word ``id``
    that ``cut -f1`` of a listing passes along. Raises ``ValueError`` naming a word that is not an id."""
    ids: list[str] = []
    for word in words:
        if word == ID_HEADER:
            continue
        task_id = word.upper()
        if not is_valid_task_id(task_id):
            raise ValueError(f"{word[:80]!r} is not a task id (a 26-character ULID)")
        ids.append(task_id)
    return list(dict.fromkeys(ids))


def minute_totals(snapshot: Snapshot) -> list[int]:
    """Terminal outcomes per minute of the snapshot, oldest first (the current minute last)."""
    return [sum(sum(by_status.values()) for by_status in m.by_queue.values()) for m in snapshot.throughput]


def status_counts(snapshot: Snapshot) -> list[tuple[str, int]]:
    """(status, tasks) for every stored status, in lifecycle order."""
    return [(status.value, n) for status, n in snapshot.statuses.items()]
