"""Liveness and readiness probes (open even when bearer-token auth is on)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from fastapi import APIRouter, Response

from jobbers.manager.deps import ServicesDep
from jobbers.manager.request_bodies import StrictJSONRoute
from jobbers.manager.schemas import Health, Readiness

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"], route_class=StrictJSONRoute)

#: Seconds each dependency may take to answer a readiness probe.
PROBE_TIMEOUT = 2.0


@router.get("/healthz")
async def healthz() -> Health:
    """The process is alive (it checks nothing else)."""
    return Health(status="ok")


@router.get("/readyz", responses={503: {"model": Readiness, "description": "Redis or SQL unreachable"}})
async def readyz(services: ServicesDep, response: Response) -> Readiness:
    """Redis and the SQL database both answer (503 names the one that does not, and why)."""
    redis_state, sql_state = await asyncio.gather(
        _probe(services.store.ping()), _probe(services.config.ping())
    )
    readiness = Readiness(
        status="ready" if redis_state == sql_state == "ok" else "unavailable",
        redis=redis_state,
        sql=sql_state,
    )
    if readiness.status != "ready":
        log.warning("not ready: redis=%s sql=%s", redis_state, sql_state)
        response.status_code = 503
    return readiness


async def _probe(check: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(check, PROBE_TIMEOUT)
    except Exception as exc:  # a probe reports every failure rather than raising it
        return f"error: {(str(exc).splitlines() or [type(exc).__name__])[0]}"
    return "ok"
