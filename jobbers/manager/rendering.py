"""Answers that show stored tasks, rendered one task at a time so that one bad record cannot
break a whole page (how an item is rendered: ``jobbers.task_json``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter
from starlette.responses import Response
from typing_extensions import TypedDict

from jobbers.manager.schemas import TasksSubmitted, TaskSubmitted
from jobbers.task_json import item_json

JSON = "application/json"
SSE = "text/event-stream"


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


def sse_event(item: BaseModel, event: str = "task") -> bytes:
    """One server-sent event carrying ``item`` as JSON (``item_json`` holds no newline)."""
    return b"event: " + event.encode() + b"\ndata: " + item_json(item) + b"\n\n"


# A submit's answer is serialized from plain dicts typed by these TypedDicts, made from the answer
# models' own fields: the same bytes as the models give, at a fraction of building thousands of
# models first (``model_construct`` costs more per task than the serialization itself).
def _typed_dict(name: str, fields: dict[str, Any]) -> Any:
    return TypedDict(name, fields)  # type: ignore[operator]


_ITEM_FIELDS = {name: f.annotation for name, f in TaskSubmitted.model_fields.items()}
_submitted_item = _typed_dict("SubmittedItem", _ITEM_FIELDS)
_PAGE_FIELDS = {name: f.annotation for name, f in TasksSubmitted.model_fields.items()}
_SUBMITTED: TypeAdapter[Any] = TypeAdapter(_submitted_item)
_SUBMITTED_PAGE: TypeAdapter[Any] = TypeAdapter(
    _typed_dict("SubmittedPage", {**_PAGE_FIELDS, "tasks": list[_submitted_item]})  # type: ignore[valid-type]
)


def submitted_response(item: dict[str, Any], status_code: int) -> Response:
    """A ``TaskSubmitted`` answer from a dict of its fields."""
    return Response(_SUBMITTED.dump_json(item), status_code=status_code, media_type=JSON)


def submitted_page_response(items: list[dict[str, Any]], created: int, status_code: int) -> Response:
    """A ``TasksSubmitted`` answer from dicts of each ``TaskSubmitted``'s fields."""
    page = _SUBMITTED_PAGE.dump_json({"tasks": items, "created": created})
    return Response(page, status_code=status_code, media_type=JSON)
