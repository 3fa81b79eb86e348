"""Queues: named buckets with a concurrency limit and an optional rate limit (stored in SQL)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.exceptions import RequestValidationError

from jobbers.errors import ConfigExistsError, ConfigNotFoundError, QueueNotEmptyError
from jobbers.manager.deps import ServicesDep
from jobbers.manager.params import CONFLICT, NOT_FOUND, UNAVAILABLE, NamePath, config_links
from jobbers.manager.request_bodies import StrictJSONRoute
from jobbers.manager.schemas import NewQueue, QueueChanges
from jobbers.models.queue_config import QueueConfig

router = APIRouter(tags=["queues"], route_class=StrictJSONRoute)


@router.get("/queues", responses=UNAVAILABLE)
async def list_queues(services: ServicesDep) -> list[QueueConfig]:
    """Every queue, by name."""
    return await services.config.list_queues()


@router.post(
    "/queues",
    status_code=201,
    responses={
        201: {
            "links": config_links(
                GetQueue=("/queues/{name}/config", "get"),
                PatchQueue=("/queues/{name}", "patch"),
                DeleteQueue=("/queues/{name}", "delete"),
            )
        },
        **CONFLICT,
        **UNAVAILABLE,
    },
)
async def create_queue(body: NewQueue, services: ServicesDep) -> QueueConfig:
    """Create a queue (409 if it exists; PUT or PATCH /queues/{name} change one)."""
    config = QueueConfig(**body.model_dump())
    if not await services.config.create_queue(config):
        raise ConfigExistsError(
            f"queue {body.name!r} exists already; use PUT or PATCH /queues/{body.name} to change it"
        )
    services.queues.forget()
    return config


@router.get("/queues/{name}/config", responses={**NOT_FOUND, **UNAVAILABLE})
async def get_queue(name: NamePath, services: ServicesDep) -> QueueConfig:
    """One queue's configuration."""
    config = await services.config.get_queue(name)
    if config is None:
        raise ConfigNotFoundError(f"no queue {name!r}")
    return config


def _changes(name: str, body: QueueChanges) -> dict[str, Any]:
    if body.name is not None and body.name != name:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "name"), "msg": f"name must be {name!r} (the path's)"}]
        )
    return body.changes()


@router.put(
    "/queues/{name}",
    responses={201: {"model": QueueConfig, "description": "the queue was created"}, **UNAVAILABLE},
)
async def put_queue(
    name: NamePath, body: QueueChanges, services: ServicesDep, response: Response
) -> QueueConfig:
    """Create a queue or change its settings (200 changed, 201 created): a setting the body leaves
    out keeps its stored value (its default for a new queue), ``null`` clears it. Workers pick it
    up within ``WORKER_REFRESH_INTERVAL``."""
    config, created = await services.config.change_queue(name, _changes(name, body), create=True)
    assert config is not None  # created when missing
    if created:
        response.status_code = 201
        services.queues.forget()
    return config


@router.patch("/queues/{name}", responses={**NOT_FOUND, **UNAVAILABLE})
async def patch_queue(name: NamePath, body: QueueChanges, services: ServicesDep) -> QueueConfig:
    """Change some of a queue's settings (404 if it does not exist), as PUT does: a setting the body
    leaves out keeps its stored value, ``null`` clears it."""
    config, _ = await services.config.change_queue(name, _changes(name, body), create=False)
    if config is None:
        raise ConfigNotFoundError(f"no queue {name!r}; PUT /queues/{name} creates one")
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
