"""Liveness and readiness probes (open even when bearer-token auth is on)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from fastapi import APIRouter, Response

from jobbers.manager.deps import ServicesDep
from jobbers.manager.request_bodies import StrictJSONRoute
from jobbers.manager.schemas import Health, Readiness
from jobbers.state.store import TaskStore

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"], route_class=StrictJSONRoute)

#: Seconds each dependency may take to answer a readiness probe.
PROBE_TIMEOUT = 2.0


@router.get("/healthz")
async def healthz() -> Health:
    """The process is alive (it checks nothing else)."""
    return Health(status="ok")


@router.get("/readyz", responses={
    503: {"model": Readiness, "description": "Redis or SQL unreachable, or Redis out of memory"}
})
async def readyz(services: ServicesDep, response: Response) -> Readiness:
    """Redis and the SQL database both answer, and Redis is not out of memory (503 names the one
    that is not ready, and why)."""
    redis_state, sql_state = await asyncio.gather(
        _probe(_redis_ready(services.store)), _probe(services.config.ping())
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


class RedisOutOfMemory(Exception):
    """Redis answers but refuses writes: ``maxmemory`` is reached."""


async def _redis_ready(store: TaskStore) -> None:
    await store.ping()
    reason = await store.out_of_memory()
    if reason is not None:
        raise RedisOutOfMemory(reason)


async def _probe(check: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(check, PROBE_TIMEOUT)
    except Exception as exc:  # a probe reports every failure rather than raising it
        return f"error: {(str(exc).splitlines() or [type(exc).__name__])[0]}"
    return "ok"
