"""The one place that maps exceptions to HTTP statuses.

Our own errors (``jobbers.errors``) map by class; Redis or SQL being unreachable (or Redis out of
memory) is a 503 with the reason; anything else is logged and answered with a bare 500, never a
traceback. 422 bodies have
FastAPI's shape (``{"detail": [{"type", "loc", "msg"}]}``) so clients parse one format.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from jobbers.config_store import SQL_UNAVAILABLE_ERRORS
from jobbers.errors import (
    ConflictError,
    InvalidCursorError,
    InvalidParamsError,
    JobbersError,
    NotFoundError,
    QueueNotFoundError,
    UnknownTaskError,
)
from jobbers.state.connection import TRANSIENT_REDIS_ERRORS

log = logging.getLogger(__name__)

#: Our exception classes and their statuses; the first entry the error is an instance of wins.
STATUS_BY_ERROR: tuple[tuple[type[JobbersError], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (UnknownTaskError, 422),
    (InvalidParamsError, 422),
    (QueueNotFoundError, 422),
    (InvalidCursorError, 422),
)

Loc = tuple[str | int, ...]


class RequestErrors(Exception):
    """Errors found while validating a request, each at a location in it (answered together, 422)."""

    def __init__(self, errors: Sequence[tuple[Loc, JobbersError]]) -> None:
        super().__init__("; ".join(str(e) for _, e in errors))
        self.errors = list(errors)


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
        return JSONResponse(_validation_body([((), exc)]), status_code=422)
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def _request_errors(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestErrors)
    return JSONResponse(_validation_body(exc.errors), status_code=422)


def _unavailable(what: str, request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s unavailable during %s %s: %r", what, request.method, request.url.path, exc)
    reason = (str(exc).splitlines() or [""])[0]
    return JSONResponse(
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
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register every mapping above on ``app``."""
    app.add_exception_handler(JobbersError, _jobbers_error)
    app.add_exception_handler(RequestErrors, _request_errors)
    for error in TRANSIENT_REDIS_ERRORS:
        if error is not OSError:
            app.add_exception_handler(error, _redis_unavailable)
    for error in SQL_UNAVAILABLE_ERRORS:
        if error is not OSError:
            app.add_exception_handler(error, _sql_unavailable)
    app.add_exception_handler(OSError, _network_unavailable)
    app.add_exception_handler(Exception, _unexpected)
