"""Answers that show stored tasks, rendered one task at a time so that one bad record cannot
break a whole page.

A stored value may be impossible to show as JSON: params nested deeper than the serializer goes
(accepted before params had a nesting limit, or written to Redis by other means), a result a task
returned nested just as deep, a string with a lone surrogate in an exception message. Such an
item is shown with that field at its default (or empty: ``{}``, ``[]``) and ``omitted`` naming it
and saying why; strings
that are not valid Unicode are shown with U+FFFD in place of the bad characters. Every other
item of the page renders as usual.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, PydanticUndefined, to_jsonable_python
from starlette.responses import Response

from jobbers.manager.errors import json_safe

log = logging.getLogger(__name__)

JSON = "application/json"


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


def item_response(item: BaseModel, status_code: int = 200) -> Response:
    """One item as a JSON answer (see ``item_json``)."""
    return Response(item_json(item), status_code=status_code, media_type=JSON)


def page_response(items: Sequence[BaseModel], **fields: Any) -> Response:
    """``{"tasks": [...items], **fields}`` as a JSON answer, each item rendered by ``item_json``.

    ``fields`` are plain JSON values (cursor, counts).
    """
    rest = json.dumps(fields, ensure_ascii=False, allow_nan=False).encode("utf-8")
    body = b'{"tasks":[' + b",".join(item_json(i) for i in items) + b"]"
    body += (b"," + rest[1:]) if fields else b"}"
    return Response(body, media_type=JSON)
