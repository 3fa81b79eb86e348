"""The task's schema: every field of a task record, and the rows the scripts take and give.

``TASK_FIELDS`` is the one list of a task record's fields. Each says how it is submitted (a
``NewTask`` attribute and its wire encoding), whether the claim hands it to the worker (a
``ClaimedTask`` attribute) and how ``/task-status`` shows it (a ``Task`` attribute). From it come:

- the **submit row** (``SUBMIT_ROW``): the submitted fields, then ``SUBMIT_EXTRAS`` (what submit
  decides with but does not store as is); ``submit.lua`` stores every submitted field it is given;
- the **claim row** (``CLAIM_ROW``): the claimed fields, read by one ``HMGET``, then
  ``CLAIM_ADDS`` (what the claim itself makes); decoded into ``ClaimedTask`` in that order;
- ``decode_task``, which reads a record into the ``Task`` the API shows.

``FINISH_ROW`` is the worker's side: an ``Outcome``'s fields, in order.

The Lua side of every row is generated: positions such as ``SUBMIT.queue`` and ``FINISH.token``
(``lua_row_positions``, written into the script source as numbers when it is loaded), and
``submitted_fields(t, submitted_at)``, ``CLAIM_READ`` (the fields one ``HMGET`` fetches for a claim)
and ``claim_row(f, id, queue, token, queued_at)`` (``lua_row_helpers``). A row's order is therefore spelled
only here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jobbers.models.queue_config import DEFAULT_QUEUE
from jobbers.models.task import Task, TaskStatus
from jobbers.state.codec import (
    datetime_to_ms,
    decode_errors,
    decode_progress,
    flag,
    integer,
    ms_to_datetime,
    optional_text,
    pack,
    text,
    unpack,
    unpack_dict,
)
from jobbers.state.records import ClaimedTask, NewTask, Outcome

Decode = Callable[[Any], Any]
Encode = Callable[[Any], Any]

#: A ready-queue score is ``enqueued_at_ms - priority * PRIORITY_STEP``: a higher priority sorts
#: first, equal priorities by enqueue time (then id). 2**42 ms is 139 years, so the time part never
#: reaches the next step, and every score stays an exact integer (|score| < 2**49 < 2**53).
PRIORITY_STEP = 2**42


def enqueued_ms(score: float | bytes | str) -> int:
    """The enqueue time (ms) a ready-queue score holds, whatever the task's priority."""
    return int(float(score)) % PRIORITY_STEP


def _same(value: Any) -> Any:
    return value


def _optional(value: Any) -> Any:
    """``None`` travels as ``""`` (not given: submit stores nothing)."""
    return "" if value is None else value


def _millis(value: dt.timedelta | None) -> int | str:
    return int(value.total_seconds() * 1000) if value else ""


def _dlq_policy(value: bool | None) -> str:
    return "" if value is None else ("save" if value else "none")


def _priority(value: int) -> int | str:
    """Priority 0 (the default) is not stored: most records never carry the field."""
    return value or ""


def _flag(value: bool) -> str:
    """A flag most records never carry: stored as "1" when set, not stored otherwise."""
    return "1" if value else ""


def _run_at(value: dt.datetime | None) -> int:
    return datetime_to_ms(value) if value else 0


def _version(raw: bytes | None) -> int:
    return int(raw) if raw else 1


def _queue(raw: bytes | None) -> str:
    return raw.decode() if raw else DEFAULT_QUEUE


def _status(raw: bytes | None) -> TaskStatus:
    return TaskStatus(raw.decode()) if raw else TaskStatus.UNSUBMITTED


@dataclass(frozen=True)
class TaskField:
    """One field of a task record (``key``, the hash field and the name the Lua code uses)."""

    key: str
    #: ``NewTask`` attribute it is submitted from, and how that value goes on the wire.
    submit: str | None = None
    encode: Encode = _same
    #: Whether a submitter may leave it out (it travels as ``""`` and is then not stored).
    optional: bool = False
    #: ``ClaimedTask`` attribute the worker gets it as, and how the claim row's value is read.
    claim: str | None = None
    claim_decode: Decode = text
    #: ``Task`` attribute ``/task-status`` shows it as, and how the stored value is read.
    show: str | None = None
    show_decode: Decode = text


# fmt: off
TASK_FIELDS: tuple[TaskField, ...] = (
    TaskField("id", submit="id", claim="id", show="id"),
    TaskField("name", submit="name", claim="name", show="name"),
    TaskField("version", submit="version", claim="version", claim_decode=int,
              show="version", show_decode=_version),
    TaskField("queue", submit="queue", claim="queue", show="queue", show_decode=_queue),
    TaskField("params", submit="params", encode=pack, claim="params", claim_decode=unpack_dict,
              show="params", show_decode=unpack_dict),
    TaskField("trace", submit="trace", optional=True, claim="trace"),
    # Groups the tasks of one session or request (an agent's, a service's): filterable, logged.
    TaskField("correlation_id", submit="correlation_id", encode=_optional, optional=True,
              claim="correlation_id", claim_decode=optional_text,
              show="correlation_id", show_decode=optional_text),
    # Higher first within a queue; part of the ready-queue score (make_ready in lua/_common.lua).
    TaskField("priority", submit="priority", encode=_priority, optional=True,
              show="priority", show_decode=integer),
    # A concurrency key (formatted from the params at submit) and its slots (make_ready).
    TaskField("concurrency_key", submit="concurrency_key", encode=_optional, optional=True,
              show="concurrency_key", show_decode=optional_text),
    TaskField("concurrency_limit", submit="concurrency_limit", encode=_optional, optional=True),
    TaskField("concurrency_duration", submit="concurrency_duration", encode=_millis, optional=True),
    TaskField("on_conflict", submit="on_conflict", encode=_optional, optional=True),
    # The concurrency key a task waits for a slot of (set while it is blocked).
    TaskField("blocked_on", show="waiting_for", show_decode=optional_text),
    # The recurring entry that fired the task, and the fire time it was fired for.
    TaskField("recurring_key", submit="recurring_key", encode=_optional, optional=True,
              show="recurring_key", show_decode=optional_text),
    TaskField("recurring_at", submit="recurring_at_ms", encode=_optional, optional=True,
              show="recurring_at", show_decode=ms_to_datetime),
    # The workflow run a task is a node of, and its node id there (jobbers/state/workflows.py).
    TaskField("workflow_id", submit="workflow_id", encode=_optional, optional=True,
              show="workflow_id", show_decode=optional_text),
    TaskField("workflow_node", submit="workflow_node", encode=_optional, optional=True,
              show="workflow_node", show_decode=optional_text),
    # A task of a type declared with register_external_task: it waits in its queue's external
    # ready set (make_ready), claimed over HTTP by outside processes, never by a worker.
    TaskField("external", submit="external", encode=_flag, optional=True, show="external", show_decode=flag),
    # Stall options known at submit; the config the task's workers publish wins over them.
    TaskField("max_stalls", submit="max_stalls", encode=_optional, optional=True),
    TaskField("hb_timeout", submit="max_heartbeat_interval", encode=_millis, optional=True),
    TaskField("dlq_policy", submit="dead_letter", encode=_dlq_policy, optional=True),
    # Written by the scripts as the task moves.
    TaskField("status", show="status", show_decode=_status),
    TaskField("retry_attempt", claim="retry_attempt", claim_decode=integer,
              show="retry_attempt", show_decode=integer),
    TaskField("stall_count", claim="stall_count", claim_decode=integer,
              show="stall_count", show_decode=integer),
    TaskField("submitted_at", claim="submitted_at_ms", claim_decode=integer,
              show="submitted_at", show_decode=ms_to_datetime),
    TaskField("run_at", show="run_at", show_decode=ms_to_datetime),
    TaskField("started_at", show="started_at", show_decode=ms_to_datetime),
    TaskField("last_heartbeat_at", show="last_heartbeat_at", show_decode=ms_to_datetime),
    TaskField("completed_at", show="completed_at", show_decode=ms_to_datetime),
    TaskField("result", show="result", show_decode=unpack),
    TaskField("error", show="error", show_decode=optional_text),
    TaskField("errors", show="errors", show_decode=decode_errors),
    TaskField("worker_id", show="worker_id", show_decode=optional_text),
    # The lease length (ms) the worker running it claimed it with: its lease is renewed every third
    # of this, so a lease not renewed for two thirds of it belongs to a dead worker (renew.lua).
    TaskField("lease_ms"),
    # The lease length (ms) an outside process claimed an external task with (POST /tasks/claim):
    # its heartbeats renew the lease for this long. Recovered only once the lease expires.
    TaskField("ext_lease_ms"),
    TaskField("cancel_requested", show="cancel_requested", show_decode=flag),
    # Why a task was cancelled without a cancel request of its own (its queue was cleared ...).
    TaskField("cancel_reason", show="cancel_reason", show_decode=optional_text),
    TaskField("dead_lettered", show="dead_lettered", show_decode=flag),
    # The task's events (GET /tasks/{id}/events) are fields 'ev:<audit stream id>' (see
    # log_event in lua/_common.lua; read by state/events.py); 'evp' names its latest progress
    # event, the one progress event it keeps.
    TaskField("evp"),
    # The latest task.progress() report (msgpack [current, total, message, attempt]), when it was
    # written, and when the last progress event was logged (renew.lua).
    TaskField("progress", show="progress", show_decode=decode_progress),
    TaskField("progress_at", show="progress_at", show_decode=ms_to_datetime),
    TaskField("progress_event_at"),
)
# fmt: on


@dataclass(frozen=True)
class WireField:
    """A row value that is not a stored task field: its name, and the attribute it comes from or goes to."""

    name: str
    attr: str
    encode: Encode = _same
    decode: Decode = text


#: Submit values that are not stored as they come: submit decides with them.
SUBMIT_EXTRAS: tuple[WireField, ...] = (
    WireField("run_at", "run_at", encode=_run_at),  # ms; 0 = ready now
    WireField("idem", "idempotency_key", encode=_optional),
    WireField("fingerprint", "fingerprint"),
)
#: What the claim script adds to each claim row after the claimed fields.
CLAIM_ADDS: tuple[WireField, ...] = (
    WireField("token", "token"),
    WireField("queued_at", "queued_at_ms", decode=enqueued_ms),  # from its ready-queue score
)
#: The guard fields the claim reads before the claimed ones.
CLAIM_GUARD: tuple[str, ...] = ("status", "cancel_requested")
#: Claimed fields the claim script has without reading the record (it popped the id from the queue).
CLAIM_KNOWS: tuple[str, ...] = ("id", "queue")
#: An attempt's end, as the worker sends it (``Outcome``'s fields).
FINISH_ROW: tuple[WireField, ...] = (
    WireField("id", "id"),
    WireField("token", "token"),
    WireField("status", "status"),  # a terminal status or a RetryKind
    WireField("result", "result"),  # msgpack, or b"" for none
    WireField("error_type", "error_type"),
    WireField("error_message", "error_message"),
    WireField("retry_attempt", "retry_attempt", encode=_optional),  # "" = unchanged
    WireField("delay_ms", "delay_ms"),  # for a retry; 0 = ready now
    WireField("dead_letter", "dead_letter", encode=int),
)

SUBMITTED_FIELDS = tuple(f for f in TASK_FIELDS if f.submit)
CLAIMED_FIELDS = tuple(f for f in TASK_FIELDS if f.claim)
SHOWN_FIELDS = tuple(f for f in TASK_FIELDS if f.show)
#: The fields the claim reads with one HMGET (``CLAIM_READ`` in Lua; ``CLAIM_READ.name`` is a position).
CLAIM_READ_KEYS: tuple[str, ...] = (
    *CLAIM_GUARD,
    *(f.key for f in CLAIMED_FIELDS if f.key not in CLAIM_KNOWS),
)
SUBMIT_ROW: tuple[str, ...] = tuple(f.key for f in SUBMITTED_FIELDS) + tuple(f.name for f in SUBMIT_EXTRAS)
CLAIM_ROW: tuple[str, ...] = tuple(f.key for f in CLAIMED_FIELDS) + tuple(f.name for f in CLAIM_ADDS)


def _compile(name: str, arg: str, items: Sequence[tuple[str, Callable[[Any], Any]]], make: Any) -> Any:
    """A function ``name(arg)`` returning ``make(f0(<item 0>), f1(<item 1>), ...)``, compiled once from
    the declaration (as ``dataclasses`` does), so a row costs one call per field and nothing more:
    a worker decodes thousands of claim rows a second. ``items`` are (expression over ``arg``,
    conversion) pairs; a conversion of ``_same`` is left out."""
    namespace: dict[str, Any] = {"make": make}
    parts = []
    for i, (expression, convert) in enumerate(items):
        if convert is _same:
            parts.append(expression)
        else:
            namespace[f"f{i}"] = convert
            parts.append(f"f{i}({expression})")
    exec(f"def {name}({arg}):\n    return make(({', '.join(parts)},))\n", namespace)
    return namespace[name]


_encode_submit: Callable[[NewTask], list[Any]] = _compile(
    "encode_submit",
    "t",
    [(f"t.{f.submit}", f.encode) for f in SUBMITTED_FIELDS]
    + [(f"t.{f.attr}", f.encode) for f in SUBMIT_EXTRAS],
    list,
)
_encode_finish: Callable[[Outcome], list[Any]] = _compile(
    "encode_finish", "o", [(f"o.{f.attr}", f.encode) for f in FINISH_ROW], list
)
_decode_claim: Callable[[Sequence[Any]], ClaimedTask] = _compile(
    "decode_claim",
    "r",
    [
        (f"r[{i}]", decode)
        for i, decode in enumerate(
            (*(f.claim_decode for f in CLAIMED_FIELDS), *(f.decode for f in CLAIM_ADDS))
        )
    ],
    ClaimedTask._make,
)
_SHOWN: tuple[tuple[bytes, str, Decode], ...] = tuple(
    (f.key.encode(), f.show or "", f.show_decode) for f in SHOWN_FIELDS
)


def submit_row(task: NewTask) -> list[Any]:
    """The submit row of ``task``, in ``SUBMIT_ROW`` order."""
    return _encode_submit(task)


def finish_row(outcome: Outcome) -> list[Any]:
    """The finish row of ``outcome``, in ``FINISH_ROW`` order."""
    return _encode_finish(outcome)


def decode_claim(row: Sequence[Any]) -> ClaimedTask:
    """A ``ClaimedTask`` from a claim row (its fields are in ``CLAIM_ROW`` order)."""
    return _decode_claim(row)


def decode_task(fields: dict[bytes, bytes]) -> Task:
    """A ``Task`` from the raw fields of its hash."""
    get = fields.get
    return Task(**{attr: decode(get(key)) for key, attr, decode in _SHOWN})


def lua_row_positions() -> dict[str, int]:
    """Where each value sits in a row, as the scripts name it: ``SUBMIT.queue`` -> 4 ... (the loader
    writes the number in place of the name, so a position costs a script nothing at run time)."""
    rows = {"SUBMIT": SUBMIT_ROW, "FINISH": tuple(f.name for f in FINISH_ROW), "CLAIM_READ": CLAIM_READ_KEYS}
    return {f"{row}.{name}": i for row, names in rows.items() for i, name in enumerate(names, 1)}


def lua_row_helpers() -> str:
    """Lua for the rows: the submit row's stored fields, the claim row."""
    lines = ["local NO_FIELDS = {}", f"local PRIORITY_STEP = {PRIORITY_STEP}"]
    # The optional submitted fields that were given (not ""), as field/value pairs.
    lines.append("local function optional_submitted(t)")
    lines.append("  local a = NO_FIELDS")
    for i, f in enumerate(SUBMITTED_FIELDS, 1):
        if f.optional:
            lines.append(
                f"  if t[{i}] ~= '' then if a == NO_FIELDS then a = {{}} end; local n = #a; "
                f"a[n + 1] = '{f.key}'; a[n + 2] = t[{i}] end"
            )
    lines.append("  return a")
    lines.append("end")
    # Every stored submitted field and the submission time, as field/value values (no table for
    # the fields every row has: they go straight to HSET).
    given = ", ".join(f"'{f.key}', t[{i}]" for i, f in enumerate(SUBMITTED_FIELDS, 1) if not f.optional)
    lines.append("local function submitted_fields(t, submitted_at)")
    lines.append(f"  return {given}, 'submitted_at', submitted_at, unpack(optional_submitted(t))")
    lines.append("end")
    read_keys = list(CLAIM_READ_KEYS)
    lines.append("local CLAIM_READ = {" + ", ".join(f"'{key}'" for key in read_keys) + "}")
    # f: the HMGET of CLAIM_READ; the fields the claim knows come as arguments.
    values = ", ".join(
        f.key if f.key in CLAIM_KNOWS else f"f[{read_keys.index(f.key) + 1}]" for f in CLAIMED_FIELDS
    )
    adds = ", ".join(f.name for f in CLAIM_ADDS)
    known = ", ".join(CLAIM_KNOWS)
    lines.append(f"local function claim_row(f, {known}, {adds}) return {{{values}, {adds}}} end")
    return "\n".join(lines) + "\n"
