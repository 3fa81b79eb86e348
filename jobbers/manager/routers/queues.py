"""Queues: named buckets with a concurrency limit and an optional rate limit (stored in SQL), and
their control: pause, resume and clear, and what each holds now (kept in Redis)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.exceptions import RequestValidationError

from jobbers.errors import ConfigExistsError, ConfigNotFoundError, QueueNotEmptyError
from jobbers.manager.deps import ServicesDep
from jobbers.manager.params import CONFLICT, NOT_FOUND, UNAVAILABLE, NamePath, config_links
from jobbers.manager.request_bodies import StrictJSONRoute
from jobbers.manager.schemas import NewQueue, QueueChanges, QueueCleared, QueueInfo, QueueState
from jobbers.models.queue_config import DEFAULT_QUEUE, QueueConfig
from jobbers.state.store import QueueStats

router = APIRouter(tags=["queues"], route_class=StrictJSONRoute)


def _state(stats: QueueStats) -> dict[str, Any]:
    return {
        "name": stats.queue,
        "paused": stats.paused,
        "ready": stats.depth,
        "blocked": stats.blocked,
        "external": stats.external,
        "scheduled": stats.scheduled,
        "running": stats.running,
        "latency_ms": stats.oldest_age_ms,
        "completed_last_minute": stats.completed_last_minute,
        "failed_last_minute": stats.failed_last_minute,
    }


@router.get("/queues", responses=UNAVAILABLE)
async def list_queues(services: ServicesDep) -> list[QueueInfo]:
    """Every queue, by name, with what it holds now (as ``GET /queues/{name}/stats``)."""
    configs = await services.config.list_queues()
    stats = await services.store.queue_stats([q.name for q in configs])
    return [QueueInfo(**{**q.model_dump(), **_state(s)}) for q, s in zip(configs, stats, strict=True)]


async def _existing(name: str, services: ServicesDep) -> None:
    if await services.config.get_queue(name) is None:
        raise ConfigNotFoundError(f"no queue {name!r}")


async def _queue_state(name: str, services: ServicesDep) -> QueueState:
    (stats,) = await services.store.queue_stats([name])
    return QueueState(**_state(stats))


@router.get("/queues/{name}/stats", responses={**NOT_FOUND, **UNAVAILABLE})
async def queue_stats(name: NamePath, services: ServicesDep) -> QueueState:
    """Whether the queue is paused, its ready, scheduled and running tasks, the age of its oldest
    ready task, and its tasks completed and failed over the last minute."""
    await _existing(name, services)
    return await _queue_state(name, services)


@router.post("/queues/{name}/pause", responses={**NOT_FOUND, **UNAVAILABLE})
async def pause_queue(name: NamePath, services: ServicesDep) -> QueueState:
    """Pause a queue: it still accepts submits and the scheduler still promotes into it, but no
    worker starts anything from it; running tasks finish normally. Pausing twice is harmless."""
    await _existing(name, services)
    await services.store.pause_queue(name)
    return await _queue_state(name, services)


@router.post("/queues/{name}/resume", responses={**NOT_FOUND, **UNAVAILABLE})
async def resume_queue(name: NamePath, services: ServicesDep) -> QueueState:
    """Resume a paused queue; idle workers pick its tasks up at once."""
    await _existing(name, services)
    await services.store.resume_queue(name)
    return await _queue_state(name, services)


@router.post("/queues/{name}/clear", responses={**NOT_FOUND, **UNAVAILABLE})
async def clear_queue(name: NamePath, services: ServicesDep) -> QueueCleared:
    """End every task waiting in the queue (ready and scheduled) ``cancelled``, each with a
    ``cancel_reason`` saying the queue was cleared (their records stay until pruned); running
    tasks finish normally. Answers how many were cleared."""
    await _existing(name, services)
    cleared = await services.store.clear_queue(name, f"queue {name} was cleared")
    return QueueCleared(queue=name, cleared=cleared)


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
    """Delete a queue (and its place in every role). Refused (409) while tasks wait in it (ready,
    scheduled, or waiting for a retry) or run in it, since no worker would run them or their
    retries again: clear it (``POST /queues/{name}/clear``) and let its running tasks end first;
    and while recurring entries submit to it: delete or move them first.
    The ``default`` queue, where a submit without a queue goes, cannot be deleted (409)."""
    if name == DEFAULT_QUEUE:
        raise QueueNotEmptyError(
            f"the {DEFAULT_QUEUE!r} queue cannot be deleted: a submit that names no queue goes there"
        )
    await _existing(name, services)
    (stats,) = await services.store.queue_stats([name])
    if stats.depth or stats.blocked or stats.external or stats.scheduled or stats.running:
        raise QueueNotEmptyError(
            f"queue {name!r} still holds {stats.depth + stats.blocked + stats.external} queued, "
            f"{stats.scheduled} scheduled "
            f"(or waiting for a retry) and {stats.running} running tasks; clear it and let its running "
            "tasks end before deleting it"
        )
    entries = [e.key for e in await services.config.list_recurring(queue=name)]
    if entries:
        raise QueueNotEmptyError(
            f"recurring entries submit to queue {name!r}: {', '.join(entries)}; "
            "delete them or move them to another queue first"
        )
    await services.config.delete_queue(name)
    await services.store.forget_queue_state(name)
    services.queues.forget()
