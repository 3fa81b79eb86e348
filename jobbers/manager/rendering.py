"""Answers that show stored tasks, rendered one task at a time so that one bad record cannot
break a whole page (how an item is rendered: ``jobbers.task_json``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

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
