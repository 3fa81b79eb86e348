"""What the routes share: the stores and caches of one manager, reached through FastAPI's ``Depends``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from jobbers.config_store import ConfigStore
from jobbers.manager.submission import QueueDirectory
from jobbers.settings import Settings
from jobbers.state.events import EventLog
from jobbers.state.queries import TaskQueries
from jobbers.state.stats import PlatformStats
from jobbers.state.store import TaskStore
from jobbers.state.waits import TaskWaits


@dataclass
class Services:
    """One manager's connections: built at startup, closed at shutdown."""

    settings: Settings
    store: TaskStore
    config: ConfigStore
    queries: TaskQueries
    queues: QueueDirectory
    stats: PlatformStats
    waits: TaskWaits
    events: EventLog


async def get_services(request: Request) -> Services:
    # async, so FastAPI calls it inline rather than in a worker thread (a sync dependency would
    # cost a thread hop on every request).
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
