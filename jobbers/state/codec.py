"""Encoding between Python values and the fields of a task's Redis hash."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgpack

from jobbers.models.task import ErrorRecord, Task, TaskStatus


def pack(value: Any) -> bytes:
    """msgpack-encode a JSON-like value (params, results)."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def pack_for_lua(value: Any) -> bytes:
    """msgpack for Lua's ``cmsgpack.unpack``, which knows no ``bin`` type: bytes go as raw strings."""
    return msgpack.packb(value, use_bin_type=False)  # type: ignore[no-any-return]


def unpack(raw: bytes | None) -> Any:
    """Decode a value written by ``pack`` (or by Lua's cmsgpack)."""
    if raw is None or raw == b"":
        return None
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


def ms_to_datetime(raw: bytes | str | None) -> dt.datetime | None:
    """A Redis-time millisecond timestamp as an aware UTC datetime."""
    if raw is None or raw in (b"", ""):
        return None
    return dt.datetime.fromtimestamp(int(raw) / 1000, tz=dt.UTC)


def datetime_to_ms(value: dt.datetime) -> int:
    """An aware (or naive UTC) datetime as epoch milliseconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1000)


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode()


def decode_errors(raw: bytes | None) -> list[ErrorRecord]:
    """The error history of a task (written by Lua's cmsgpack, or by Python)."""
    items = unpack(raw) or []
    if isinstance(items, dict):  # cmsgpack encodes a 1-element Lua array as an array; be safe
        items = [items[k] for k in sorted(items)]
    return [
        ErrorRecord(
            exception_type=str(item.get("exception_type", "")),
            message=str(item.get("message", "")),
            at=dt.datetime.fromtimestamp(int(item.get("at", 0)) / 1000, tz=dt.UTC),
            attempt=int(item.get("attempt", 0)),
        )
        for item in items
    ]


def decode_task(fields: dict[bytes, bytes]) -> Task:
    """A ``Task`` from the raw fields of its hash."""
    get = fields.get
    params = unpack(get(b"params"))
    return Task(
        id=(get(b"id") or b"").decode(),
        name=(get(b"name") or b"").decode(),
        version=int(get(b"version") or 1),
        queue=(get(b"queue") or b"default").decode(),
        params=params if isinstance(params, dict) else {},
        status=TaskStatus((get(b"status") or b"unsubmitted").decode()),
        submitted_at=ms_to_datetime(get(b"submitted_at")),
        run_at=ms_to_datetime(get(b"run_at")),
        started_at=ms_to_datetime(get(b"started_at")),
        last_heartbeat_at=ms_to_datetime(get(b"last_heartbeat_at")),
        completed_at=ms_to_datetime(get(b"completed_at")),
        retry_attempt=int(get(b"retry_attempt") or 0),
        stall_count=int(get(b"stall_count") or 0),
        result=unpack(get(b"result")),
        error=_text(get(b"error")),
        errors=decode_errors(get(b"errors")),
        worker_id=_text(get(b"worker_id")),
        cancel_requested=get(b"cancel_requested") == b"1",
        dead_lettered=get(b"dead_lettered") == b"1",
    )
