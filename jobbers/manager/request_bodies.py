"""JSON request bodies parsed once, strictly: what cannot be stored and served back is a 422.

Every router uses ``StrictJSONRoute``. Its requests parse a JSON body with
``jobbers.json_values.loads``, so a NaN, an integer beyond 64 bits, a lone surrogate, a body
nested deeper than ``MAX_BODY_DEPTH``, bytes that are not UTF-8 or plain bad syntax are each a
422 naming the place in the body, before any model sees them (FastAPI alone answers some of
these with an undocumented 400, and others reach the code that stores the task). A query
parameter the route does not take is a 422 naming it too (FastAPI alone ignores it, so a typo
such as ``?stauts=failed`` would silently answer for every status).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from jobbers import json_values
from jobbers.manager.params import TOO_LARGE


def is_json_content_type(value: str | None) -> bool:
    """Whether a Content-Type names JSON (``application/json`` or ``application/*+json``, any
    parameters), the bodies FastAPI parses as JSON."""
    if not value:
        return False
    media_type = value.partition(";")[0].strip().lower()
    suffixed = media_type.startswith("application/") and media_type.endswith("+json")
    return media_type == "application/json" or suffixed


_NOT_JSON = {
    "type": "content_type",
    "loc": ("body",),
    "msg": "the body must be JSON, sent with 'Content-Type: application/json'",
}


class StrictJSONRequest(Request):
    """A request whose ``json()`` is ``json_values.loads``: raises ``RequestValidationError`` (422)."""

    _strict_json: Any

    async def json(self) -> Any:
        if not hasattr(self, "_strict_json"):
            value, problem = json_values.loads(await self.body())
            if problem is not None:
                raise RequestValidationError(
                    [{"type": problem.kind, "loc": ("body", *problem.path), "msg": problem.message}]
                )
            self._strict_json = value
        return self._strict_json


class StrictJSONRoute(APIRoute):
    """An ``APIRoute`` whose JSON body is parsed by ``StrictJSONRequest`` before FastAPI reads it,
    and whose documented answers include the 413 of a body over the limit.

    The body is parsed here, outside FastAPI's body reading (which answers 400 for any error it
    does not expect); FastAPI's own ``request.json()`` then returns the parsed value.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # BodySizeLimit refuses a body over MANAGER_MAX_BODY_BYTES on every method that may carry one.
        if set(kwargs.get("methods") or ()) - {"GET", "HEAD", "OPTIONS"}:
            kwargs["responses"] = {**TOO_LARGE, **(kwargs.get("responses") or {})}
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self._strict(super().get_route_handler())

    def _strict(
        self, handler: Callable[[Request], Coroutine[Any, Any, Response]]
    ) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """``handler`` called with a ``StrictJSONRequest`` whose JSON body is already parsed."""
        has_body = self.body_field is not None
        takes = query_names(self.dependant)

        async def strict_handler(request: Request) -> Response:
            if request.scope.get("query_string"):
                refuse_unknown_query(request, takes)
            strict = StrictJSONRequest(request.scope, request.receive)
            if has_body and await strict.body():
                if not is_json_content_type(strict.headers.get("content-type")):
                    raise RequestValidationError([_NOT_JSON])
                await strict.json()
            return await handler(strict)

        return strict_handler


def query_names(dependant: Dependant) -> frozenset[str]:
    """The names of the query parameters a route takes: its own and its dependencies'."""
    names: set[str] = set()
    todo = [dependant]
    while todo:
        current = todo.pop()
        names.update(field.alias for field in current.query_params)
        todo.extend(current.dependencies)
    return frozenset(names)


def refuse_unknown_query(request: Request, takes: frozenset[str]) -> None:
    """Raise ``RequestValidationError`` (422, each by name) for every query parameter of
    ``request`` that is not one of ``takes``."""
    unknown = [k for k in request.query_params if k not in takes]  # each name once
    if unknown:
        offered = ", ".join(sorted(takes)) or "none"
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", k),
                    "msg": f"unknown query parameter (this route takes: {offered})",
                }
                for k in unknown
            ]
        )
