"""The records the state layer takes and returns (plain data; no Redis in here)."""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ulid import ULID

from jobbers.models.outcomes import CancelKind, ResubmitKind, RetryKind
from jobbers.models.queue_config import DEFAULT_QUEUE
from jobbers.models.task import TaskStatus

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Every pair of Crockford digits, indexed by the 10 bits they encode.
_DIGIT_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]
_last_id_value = 0


class FreshId(str):
    """A task id made by ``new_task_id``: unique by construction, so a submit need not check that
    another queue's task already holds it (an id a submitter chose is a plain ``str``, checked)."""

    __slots__ = ()


def is_fresh_id(value: str) -> bool:
    """Whether ``value`` was made by ``new_task_id`` in this process."""
    return type(value) is FreshId


def new_task_id() -> str:
    """A new task id: a ULID (48-bit millisecond time, 80 random bits), monotonic per process.

    Ids made in the same millisecond count up from the first one's random part, so tasks
    submitted together keep their order in a queue (same-millisecond scores tie-break by id).
    Encoded here rather than through ``ULID()``, which costs more per id.
    """
    global _last_id_value
    millis = time.time_ns() // 1_000_000
    if _last_id_value >> 80 == millis:
        value = _last_id_value + 1
    else:
        value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    _last_id_value = value
    return encode_task_id(value)


def encode_task_id(value: int) -> str:
    """The ULID text of a 128-bit value (48-bit millisecond time, then 80 bits)."""
    # 26 Crockford digits = 130 bits: 13 pairs of digits, 10 bits each, the first pair holding
    # the top 8 bits (a third of the cost of base64.b32encode and a translation).
    p = _DIGIT_PAIRS
    return FreshId(
        p[value >> 120] + p[(value >> 110) & 1023] + p[(value >> 100) & 1023] + p[(value >> 90) & 1023]
        + p[(value >> 80) & 1023] + p[(value >> 70) & 1023] + p[(value >> 60) & 1023]
        + p[(value >> 50) & 1023] + p[(value >> 40) & 1023] + p[(value >> 30) & 1023]
        + p[(value >> 20) & 1023] + p[(value >> 10) & 1023] + p[value & 1023]
    )


def is_valid_task_id(value: str) -> bool:
    """Whether ``value`` is a well-formed ULID."""
    try:
        ULID.from_str(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class NewTask:
    """A task to submit. ``run_at`` in the future schedules it instead of queueing it.

    Build it with ``jobbers.task_builder.build_new_task`` (which fills the stall options and the
    fingerprint from the registry and the request); the fields are the submit row's
    (``jobbers.state.task_schema``).
    """

    name: str
    version: int = 1
    queue: str = DEFAULT_QUEUE
    params: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_task_id)
    run_at: dt.datetime | None = None
    idempotency_key: str | None = None
    #: What the request asked for, hashed: a retry with the same Idempotency-Key must match it
    #: ("" = not fingerprinted, matches any request).
    fingerprint: str = ""
    #: Stall options, when the submitter knows the task; the workers' published config wins.
    max_stalls: int | None = None
    max_heartbeat_interval: dt.timedelta | None = None
    dead_letter: bool | None = None
    trace: str = ""
    #: Groups the tasks of one session or request (at most ``models.task.MAX_CORRELATION_ID`` characters).
    correlation_id: str | None = None
    #: -100..100; higher is claimed first within its queue, equal priorities first-in first-out.
    priority: int = 0
    #: The concurrency key (already formatted from the params; None = none): at most
    #: ``concurrency_limit`` tasks of the queue with the key hold a slot at once, each for at most
    #: ``concurrency_duration``; ``on_conflict`` says what a submit finding no free slot does.
    concurrency_key: str | None = None
    #: The recurring entry that fired this task, and the fire time (ms) it was fired for.
    recurring_key: str | None = None
    recurring_at_ms: int | None = None
    #: The workflow run this task is a node of, and its node id there.
    workflow_id: str | None = None
    workflow_node: str | None = None
    concurrency_limit: int | None = None
    concurrency_duration: dt.timedelta | None = None
    on_conflict: str | None = None
    #: A task of an external type (``register_external_task``): no worker claims it.
    external: bool = False


@dataclass(frozen=True)
class RequestKey:
    """The Idempotency-Key of a whole (bulk) request and the fingerprint of its body: a later request
    with the same key must have the same fingerprint, or it is refused before anything is written."""

    key: str
    fingerprint: str


@dataclass(frozen=True)
class SubmitOutcome:
    """What submit did: ``created`` is False when an existing task (same id/key) was returned."""

    id: str
    status: TaskStatus
    submitted_at: dt.datetime
    created: bool
    #: Why the new task was cancelled at once (its concurrency key was at its limit), else None.
    cancel_reason: str | None = None


class ClaimedTask(NamedTuple):
    """A task a worker now holds under a lease (a tuple: a worker builds thousands a second).

    Its fields are the claim row, in order: the task fields the claim carries
    (``task_schema.TASK_FIELDS``), then what the claim itself adds (``task_schema.CLAIM_ADDS``).
    """

    id: str
    name: str
    version: int
    queue: str
    params: dict[str, Any]
    trace: str
    correlation_id: str | None
    retry_attempt: int
    stall_count: int
    submitted_at_ms: int
    token: str
    #: Redis time (ms) it entered the ready queue: submission, or promotion once scheduled.
    queued_at_ms: int


@dataclass(frozen=True)
class ClaimResult:
    """Claimed tasks, Redis time of the claim, and when a rate-limited queue frees (or None)."""

    tasks: list[ClaimedTask]
    now_ms: int
    retry_in_ms: int | None


@dataclass(frozen=True)
class StallConfig:
    """The parts of a task's config the cleaner needs to judge it without the task module."""

    max_heartbeat_seconds: float  # 0 = no own heartbeat interval
    max_stalls: int
    dead_letter: bool


@dataclass(frozen=True)
class LeaseRenewal:
    """One running task in a renewal: its lease, whether it called ``heartbeat()`` since, and its
    queue when the caller knows it (then no look-up is needed to find its key space)."""

    id: str
    token: str
    heartbeat: bool = False
    queue: str = ""
    #: A new progress report to write: msgpack [current, total, message, attempt] (b"" = none),
    #: and its text for the event log.
    progress: bytes = b""
    progress_text: str = ""


@dataclass(frozen=True)
class Outcome:
    """The end of one attempt, to be written under its lease token (the finish row's fields)."""

    id: str
    token: str
    #: A terminal ``TaskStatus``, or a ``RetryKind`` (back to the queue, or its schedule after ``delay_ms``).
    status: TaskStatus | RetryKind | str
    result: bytes = b""  # msgpack (``state.codec.pack``), packed by the caller so it can catch errors
    error_type: str = ""
    error_message: str = ""
    retry_attempt: int | None = None
    delay_ms: int = 0
    dead_letter: bool = False


@dataclass(frozen=True)
class CancelOutcome:
    """What a cancel did to one task, and the status it is in now ("" when not found)."""

    id: str
    outcome: CancelKind
    status: str
    queue: str = ""
    name: str = ""


@dataclass(frozen=True)
class ResubmitOutcome:
    """What a dead letter resubmit did to one task, and the status it is in now."""

    id: str
    outcome: ResubmitKind
    status: str


class Promotion(NamedTuple):
    """What one promotion pass over a queue did (all times are Redis time, in ms)."""

    promoted: int
    next_due_ms: int | None
    now_ms: int
    #: How long past its ``run_at`` the most overdue promoted task was (0 when none was promoted).
    max_lag_ms: int


@dataclass(frozen=True)
class TaskRef:
    """Who a task is, for metrics and logs: its queue, name, version and whether it is in the DLQ."""

    queue: str
    name: str
    version: int
    dead_lettered: bool


@dataclass(frozen=True)
class QueueStats:
    """A queue's state by Redis time: its ready depth and the age of its oldest ready task (0 when
    none: whatever their priorities), its scheduled and running tasks, whether it is paused."""

    queue: str
    depth: int
    oldest_age_ms: int
    scheduled: int = 0
    running: int = 0
    paused: bool = False
    #: Tasks of the queue that ended so over the last 60 s (from per-minute counts: the current
    #: minute so far, and the part of the previous minute that falls inside the 60 s, pro rata).
    completed_last_minute: int = 0
    failed_last_minute: int = 0
    #: Tasks waiting for a free slot of their concurrency key (not counted in ``depth``).
    blocked: int = 0
    #: Ready tasks of external types, waiting for an outside process's claim (not in ``depth``).
    external: int = 0


@dataclass(frozen=True)
class RecoverResult:
    """What lease recovery did."""

    requeued: list[str]
    stalled: list[str]
    cancelled: list[str]
