"""The manager's FastAPI application: routers, error mapping, body limit and optional auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from jobbers.config_store import ConfigStore
from jobbers.manager.admin_ui import UI_PATH, install_ui
from jobbers.manager.deps import Services
from jobbers.manager.docs_page import install_docs
from jobbers.manager.errors import MethodsByPath, install_error_handlers
from jobbers.manager.middleware import BearerAuth, BodySizeLimit, SecurityHeaders
from jobbers.manager.routers import (
    audit,
    dlq,
    external,
    health,
    queues,
    recurring,
    roles,
    stats,
    tasks,
    workflows,
)
from jobbers.manager.submission import QueueDirectory
from jobbers.settings import Settings
from jobbers.state.connection import connect
from jobbers.state.events import EventLog
from jobbers.state.queries import TaskQueries
from jobbers.state.stats import PlatformStats
from jobbers.state.store import TaskStore
from jobbers.state.waits import TaskWaits

#: Paths that answer without a bearer token (probes must work for orchestrators; the UI's static
#: files hold no data, and the UI itself asks for the token when the API answers 401; ``/`` only
#: redirects to the UI).
OPEN_PATHS = ("/", "/healthz", "/readyz", UI_PATH)
OPEN_PREFIXES = (UI_PATH + "/",)


def _version() -> str:
    try:
        return version("jobbers")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def create_app(
    settings: Settings | None = None, *, store: TaskStore | None = None, config: ConfigStore | None = None
) -> FastAPI:
    """The manager app. Connections are opened at startup (from ``settings`` unless ``store`` or
    ``config`` are given, which the caller then owns and closes); startup runs the idempotent SQL
    migration, so a fresh install has the ``default`` queue.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task_store = store or TaskStore(
            connect(settings.redis_url, settings.redis_cluster),
            settings.redis_key_prefix,
            settings.audit_max_events,
        )
        config_store = config or ConfigStore(settings.sql_path)
        try:
            await config_store.migrate()
            app.state.services = Services(
                settings=settings,
                store=task_store,
                config=config_store,
                queries=TaskQueries(task_store),
                queues=QueueDirectory(config_store),
                stats=PlatformStats(task_store),
                waits=TaskWaits(task_store),
                events=EventLog(task_store),
            )
            yield
        finally:
            services = getattr(app.state, "services", None)
            if services is not None:
                await services.waits.close()
            if config is None:
                await config_store.close()
            if store is None:
                await task_store.close()

    app = FastAPI(
        title="Jobbers",
        version=_version(),
        description="Submit, inspect and cancel tasks; manage the dead letter queue, queues and roles.",
        lifespan=lifespan,
        # Served from the package instead (install_docs): FastAPI's pages load Swagger UI and ReDoc
        # from a CDN, and are blank offline.
        docs_url=None,
        redoc_url=None,
        # No span, metric and log record per HTTP request from FastAPI itself: with telemetry on
        # they doubled the manager's CPU per request (~0.7 ms), halving its throughput. Jobbers'
        # own task.submit span (under the caller's traceparent) and metrics cover what matters;
        # per-request HTTP metrics belong at the load balancer.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    routers = (tasks, audit, external, dlq, queues, roles, recurring, workflows, stats, health)
    for module in routers:
        app.include_router(module.router)
    install_ui(app)
    install_docs(app)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        """Browsers that open the manager's address land on the admin UI."""
        return RedirectResponse("ui/", status_code=307)

    app.state.methods_by_path = MethodsByPath([*app.routes, *(r for m in routers for r in m.router.routes)])
    app.add_middleware(BodySizeLimit, max_bytes=settings.manager_max_body_bytes)
    if settings.manager_api_token is not None:
        # Added last, so it runs first: an unauthenticated request is refused before its body is read.
        app.add_middleware(
            BearerAuth,
            token=settings.manager_api_token.get_secret_value(),
            open_paths=OPEN_PATHS,
            open_prefixes=OPEN_PREFIXES,
        )
    # Added last, so it runs first: every answer carries the headers, a 401 or 413 included.
    app.add_middleware(SecurityHeaders)
    return app
