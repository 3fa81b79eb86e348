"""Encoding between Python values and the fields of a task's Redis hash (one function per kind)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgpack

from jobbers.models.task import ErrorRecord, TaskProgress


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


def pack_progress(current: float, total: float | None, message: str | None, attempt: int) -> bytes:
    """A progress report as the record keeps it (``decode_progress`` reads it)."""
    return pack_for_lua([current, total, message, attempt])


def decode_progress(raw: bytes | None) -> TaskProgress | None:
    """The progress report a record holds (None when it has none, or an unreadable one)."""
    value = unpack(raw)
    if not isinstance(value, list) or len(value) != 4:
        return None
    current, total, message, attempt = value
    return TaskProgress(current=current, total=total, message=message, attempt=attempt)


def unpack_dict(raw: bytes | None) -> dict[str, Any]:
    """A msgpack-encoded mapping (params); anything else reads as ``{}``."""
    value = unpack(raw)
    return value if isinstance(value, dict) else {}


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


def text(raw: bytes | None) -> str:
    """A text field; absent reads as ``""``."""
    return raw.decode() if raw else ""


def optional_text(raw: bytes | None) -> str | None:
    """A text field that may be absent (``None``)."""
    return None if raw is None else raw.decode()


def integer(raw: bytes | None) -> int:
    """An integer field; absent or empty reads as 0."""
    return int(raw) if raw else 0


def flag(raw: bytes | None) -> bool:
    """A ``"1"``/``"0"`` field."""
    return raw == b"1"


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
