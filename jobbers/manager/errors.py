"""The one place that maps exceptions to HTTP statuses.

Our own errors (``jobbers.errors``) map by class; Redis or SQL being unreachable (or Redis out of
memory) is a 503 with the reason; anything else is logged and answered with a bare 500, never a
traceback. 422 bodies have FastAPI's shape (``{"detail": [{"type", "loc", "msg", "input"?}]}``)
so clients parse one format. Every error answer is rendered by ``SafeJSONResponse``: an error
that echoes what the client sent (a lone surrogate, a NaN) can never fail to render itself.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from jobbers.config_store import SQL_UNAVAILABLE_ERRORS
from jobbers.errors import (
    ConflictError,
    InvalidCursorError,
    InvalidParamsError,
    JobbersError,
    NotFoundError,
    QueueNotFoundError,
    UnknownTaskError,
    WorkflowGraphError,
)
from jobbers.manager.middleware import security_headers
from jobbers.state.connection import TRANSIENT_REDIS_ERRORS
from jobbers.task_json import json_safe

log = logging.getLogger(__name__)

#: Our exception classes and their statuses; the first entry the error is an instance of wins.
STATUS_BY_ERROR: tuple[tuple[type[JobbersError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (UnknownTaskError, 422),
    (InvalidParamsError, 422),
    (QueueNotFoundError, 422),
    (InvalidCursorError, 422),
    (WorkflowGraphError, 422),
)

Loc = tuple[str | int, ...]


class RequestErrors(Exception):
    """Errors found while validating a request, each at a location in it (answered together, 422)."""

    def __init__(self, errors: Sequence[tuple[Loc, JobbersError]]) -> None:
        super().__init__("; ".join(str(e) for _, e in errors))
        self.errors = list(errors)


#: Echoed ``input`` strings are cut to this many characters; containers are not echoed at all, so
#: a 422 for a 1 MiB body is small.
MAX_ECHOED_INPUT = 200


class SafeJSONResponse(JSONResponse):
    """A ``JSONResponse`` that renders anything: on content JSON cannot carry, it renders
    ``json_safe(content)`` instead of failing."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except (ValueError, TypeError, UnicodeEncodeError, RecursionError):
            return json.dumps(json_safe(content), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _echoed_input(value: Any) -> tuple[bool, Any]:
    """Whether to echo a failed value as ``input``, and how: scalars only, long strings cut."""
    if isinstance(value, str):
        return True, json_safe(value[:MAX_ECHOED_INPUT] + ("..." if len(value) > MAX_ECHOED_INPUT else ""))
    if value is None or isinstance(value, bool | int | float):
        return True, json_safe(value)
    return False, None


def validation_entry(error: Mapping[str, Any]) -> dict[str, Any]:
    """One error of a ``RequestValidationError`` as the API answers it."""
    entry: dict[str, Any] = {
        "type": str(error.get("type", "value_error")),
        "loc": [json_safe(part) for part in error.get("loc", ())],
        "msg": json_safe(str(error.get("msg", ""))),
    }
    if "input" in error:
        echo, value = _echoed_input(error["input"])
        if echo:
            entry["input"] = value
    ctx = error.get("ctx")
    if isinstance(ctx, Mapping) and ctx:
        # ctx values may be exceptions (a validator's ValueError): json_safe gives their str().
        entry["ctx"] = json_safe(dict(ctx))
    return entry


def status_for(exc: JobbersError) -> int:
    """The HTTP status of one of our errors (400 for one not in the table)."""
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 400


def _error_type(exc: Exception) -> str:
    name = type(exc).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _validation_body(errors: Sequence[tuple[Loc, Exception]]) -> dict[str, object]:
    return {"detail": [{"type": _error_type(e), "loc": list(loc), "msg": str(e)} for loc, e in errors]}


async def _jobbers_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JobbersError)
    status = status_for(exc)
    if status == 422:
        return SafeJSONResponse(_validation_body([((), exc)]), status_code=422)
    return SafeJSONResponse({"detail": str(exc)}, status_code=status)


async def _request_errors(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestErrors)
    return SafeJSONResponse(_validation_body(exc.errors), status_code=422)


async def _request_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return SafeJSONResponse({"detail": [validation_entry(e) for e in exc.errors()]}, status_code=422)


class MethodsByPath:
    """Every method each route path answers, to build the ``Allow`` header of a 405.

    The router's own 405 names only the methods of the first route whose path matched, so
    ``DELETE /queues`` would say ``Allow: GET`` although ``POST /queues`` exists too.
    """

    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        by_regex: dict[str, tuple[re.Pattern[str], set[str]]] = {}
        for route in routes:
            if isinstance(route, Route | APIRoute) and route.methods:
                _, methods = by_regex.setdefault(route.path_regex.pattern, (route.path_regex, set()))
                methods |= route.methods
        self._paths = [(pattern, frozenset(methods)) for pattern, methods in by_regex.values()]

    def allowed(self, path: str) -> list[str]:
        """The methods some route answers at ``path``, sorted (HEAD wherever GET is)."""
        methods: set[str] = set()
        for pattern, route_methods in self._paths:
            if pattern.match(path):
                methods |= route_methods
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Starlette's own answers (404 for an unknown path, 405 with an Allow header, ...).
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    methods: MethodsByPath | None = getattr(request.app.state, "methods_by_path", None)
    if exc.status_code == 405 and methods is not None:
        headers["Allow"] = ", ".join(methods.allowed(request.url.path)) or headers.get("Allow", "")
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=headers)
    return SafeJSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def _unavailable(what: str, request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s unavailable during %s %s: %r", what, request.method, request.url.path, exc)
    reason = (str(exc).splitlines() or [""])[0]
    return SafeJSONResponse(
        {"detail": f"{what} is unavailable ({type(exc).__name__}): {reason}"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return _unavailable("Redis", request, exc)


async def _sql_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return _unavailable("the configuration database", request, exc)


async def _network_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # A bare OSError: a refused or dropped connection that neither client library wrapped.
    return _unavailable("a backing service (Redis or the configuration database)", request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    # Starlette answers this outside every middleware, so the security headers are added here.
    headers = dict(security_headers(request.url.path))
    return SafeJSONResponse({"detail": "internal server error"}, status_code=500, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register every mapping above on ``app``."""
    app.add_exception_handler(JobbersError, _jobbers_error)
    app.add_exception_handler(RequestErrors, _request_errors)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    for error in TRANSIENT_REDIS_ERRORS:
        if error is not OSError:
            app.add_exception_handler(error, _redis_unavailable)
    for error in SQL_UNAVAILABLE_ERRORS:
        if error is not OSError:
            app.add_exception_handler(error, _sql_unavailable)
    app.add_exception_handler(OSError, _network_unavailable)
    app.add_exception_handler(Exception, _unexpected)
