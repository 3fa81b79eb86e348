"""How a stored task (or any answer item) is shown as JSON, by the REST API and by ``jobbers``.

A stored value may be impossible to show as JSON: params nested deeper than the serializer goes
(accepted before params had a nesting limit, or written to Redis by other means), a result a task
returned nested just as deep, a string with a lone surrogate in an exception message. Such an
item is shown with that field at its default (or empty: ``{}``, ``[]``) and ``omitted`` naming it
and saying why; strings that are not valid Unicode are shown with U+FFFD in place of the bad
characters. Every other item of a page or an export renders as usual.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, PydanticUndefined, to_jsonable_python

log = logging.getLogger(__name__)

_SURROGATE = re.compile("[\ud800-\udfff]")


def json_safe(value: Any) -> Any:
    """``value`` with what JSON cannot carry replaced: lone surrogates by U+FFFD, NaN and the
    infinities by null, and any other non-JSON object by its ``str()``."""
    if isinstance(value, str):
        return value if value.isascii() else _SURROGATE.sub("\ufffd", value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        # Python will not print an int of more than 4,300 digits; nobody needs to read one.
        return value if value.bit_length() <= 64 else f"<an integer of {value.bit_length()} bits>"
    if isinstance(value, Mapping):
        return {str(json_safe(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return json_safe(str(value))


def item_json(item: BaseModel) -> bytes:
    """``item`` as JSON; what cannot be rendered is left out and named in its ``omitted`` field."""
    try:
        return item.__pydantic_serializer__.to_json(item)
    except (PydanticSerializationError, ValueError, RecursionError):
        return _degraded_json(item)


def _degraded_json(item: BaseModel) -> bytes:
    fields = type(item).model_fields
    shown: dict[str, Any] = {}
    omitted: dict[str, str] = {}
    for name in fields:
        value = getattr(item, name)
        try:
            shown[name] = to_jsonable_python(value)
        except (PydanticSerializationError, ValueError, RecursionError) as exc:
            default = fields[name].get_default(call_default_factory=True)
            shown[name] = _empty_like(value) if default is PydanticUndefined else to_jsonable_python(default)
            omitted[name] = _reason(exc)
    # Every item schema the API answers with has this field (a stored Task is shown as TaskView).
    shown["omitted"] = omitted
    log.warning("task %s shown without %s: %s", shown.get("id"), ", ".join(omitted) or "bad text", omitted)
    return json.dumps(json_safe(shown), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _empty_like(value: object) -> object:
    # What stands in for a required value that cannot be shown: empty of its kind, so the item
    # keeps its schema.
    if isinstance(value, dict):
        return {}
    if isinstance(value, list | tuple):
        return []
    return None


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "recursion" in text.lower() or "depth" in text.lower() or isinstance(exc, RecursionError):
        return "nested too deep to be shown as JSON"
    return f"cannot be shown as JSON: {text[:200]}"
