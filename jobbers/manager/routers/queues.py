"""Queues: named buckets with a concurrency limit and an optional rate limit (stored in SQL)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.exceptions import RequestValidationError

from jobbers.errors import ConfigExistsError, ConfigNotFoundError, QueueNotEmptyError
from jobbers.manager.deps import ServicesDep
from jobbers.manager.params import CONFLICT, NOT_FOUND, UNAVAILABLE, NamePath
from jobbers.manager.schemas import QueueSettings
from jobbers.models.queue_config import QueueConfig

router = APIRouter(tags=["queues"])


@router.get("/queues", responses=UNAVAILABLE)
async def list_queues(services: ServicesDep) -> list[QueueConfig]:
    """Every queue, by name."""
    return await services.config.list_queues()


@router.post("/queues", status_code=201, responses={**CONFLICT, **UNAVAILABLE})
async def create_queue(body: QueueConfig, services: ServicesDep) -> QueueConfig:
    """Create a queue (409 if it exists; PUT /queues/{name} replaces one)."""
    if not await services.config.create_queue(body):
        raise ConfigExistsError(
            f"queue {body.name!r} exists already; use PUT /queues/{body.name} to change it"
        )
    services.queues.forget()
    return body


@router.get("/queues/{name}/config", responses={**NOT_FOUND, **UNAVAILABLE})
async def get_queue(name: NamePath, services: ServicesDep) -> QueueConfig:
    """One queue's configuration."""
    config = await services.config.get_queue(name)
    if config is None:
        raise ConfigNotFoundError(f"no queue {name!r}")
    return config


@router.put(
    "/queues/{name}",
    responses={201: {"model": QueueConfig, "description": "the queue was created"}, **UNAVAILABLE},
)
async def put_queue(
    name: NamePath, body: QueueSettings, services: ServicesDep, response: Response
) -> QueueConfig:
    """Create or replace a queue's configuration (200 replaced, 201 created). Workers pick it up
    within ``WORKER_REFRESH_INTERVAL``."""
    if body.name is not None and body.name != name:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "name"), "msg": f"name must be {name!r} (the path's)"}]
        )
    config = QueueConfig(name=name, **body.model_dump(exclude={"name"}))
    if await services.config.save_queue(config):
        response.status_code = 201
        services.queues.forget()
    return config


@router.delete("/queues/{name}", status_code=204, responses={**NOT_FOUND, **CONFLICT, **UNAVAILABLE})
async def delete_queue(name: NamePath, services: ServicesDep) -> None:
    """Delete a queue (and its place in every role). Refused (409) while tasks wait in it, since
    no worker would ever run them."""
    if await services.config.get_queue(name) is None:
        raise ConfigNotFoundError(f"no queue {name!r}")
    ready, scheduled = await services.queries.waiting_counts(name)
    if ready or scheduled:
        raise QueueNotEmptyError(
            f"queue {name!r} still holds {ready} queued and {scheduled} scheduled tasks; "
            "cancel them or let them run before deleting it"
        )
    await services.config.delete_queue(name)
    services.queues.forget()
