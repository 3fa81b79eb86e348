"""The MCP server (``jobbers_mcp``): Jobbers as tools for AI agents, on the official ``mcp`` SDK.

A thin adapter with no logic of its own: each tool calls what the REST API and the Python client
call (``JobbersClient`` for submits, ``jobbers.external_tasks`` for completing and failing,
``jobbers.sessions`` for resuming a session, ``TaskQueries`` and ``PlatformStats`` for reads).
It reads the settings every process reads (``REDIS_URL``, ``SQL_PATH`` ...), speaks stdio by
default and streamable HTTP with ``--http``. Given a task module it refuses names the registry
does not know, and with ``--with-worker`` runs a worker in the same process for the types that
have functions (external types are left to the agent: it completes them itself).

Tools that only read carry ``readOnlyHint``; ``jobbers install-mcp`` auto-approves only those by
default.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import ToolAnnotations
from pydantic import ConfigDict, Field

from jobbers import external_tasks
from jobbers.client import JobbersClient
from jobbers.config_store import ConfigStore
from jobbers.env_help import environment_help
from jobbers.errors import ConfigurationError, JobbersError
from jobbers.logs import configure_logging
from jobbers.models.event import EventKind
from jobbers.models.queue_config import DEFAULT_QUEUE
from jobbers.models.task import LISTED_STATUSES, MAX_PRIORITY, MIN_PRIORITY, Task, TaskStatus
from jobbers.registry import find_task_config, load_task_module, registered_tasks, runnable_tasks
from jobbers.sessions import incomplete_tasks
from jobbers.settings import Settings
from jobbers.startup import load_settings, open_store, prepare_sql, run_command
from jobbers.state.events import AuditQuery, EventLog
from jobbers.state.queries import TaskFilter, TaskQueries
from jobbers.state.stats import PlatformStats
from jobbers.task_json import item_json

log = logging.getLogger(__name__)

#: The tools that only read (auto-approved by ``jobbers install-mcp`` unless ``--full-approve``).
READ_ONLY_TOOLS = ("health", "resume_session", "check_task", "list_tasks", "audit_log")
#: The tools that change state (approved one call at a time by default).
WRITE_TOOLS = ("enqueue_task", "complete_task", "fail_task")
SERVER_NAME = "jobbers"
#: How many of a task's latest events ``check_task`` shows.
CHECK_TASK_EVENTS = 20
_READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)

CorrelationId = Annotated[
    str, Field(min_length=1, max_length=256, description="groups a session's tasks (e.g. the workspace path)")
]
TaskId = Annotated[str, Field(pattern=r"^[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}$", description="task id")]
Token = Annotated[
    str | None, Field(default=None, max_length=300, description="the lease token of a claim, if claimed")
]


def _shown(task: Task) -> dict[str, Any]:
    """A task as ``/task-status`` shows it (JSON-safe, whatever it holds)."""
    shown: dict[str, Any] = json.loads(item_json(task))
    return shown


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        utc = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    except OverflowError:
        utc = None
    if utc is None or utc.year < 1970:
        raise ToolError("since and until must be at or after 1970-01-01T00:00:00Z")
    return utc


def _ms(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _summary(task: Task) -> dict[str, Any]:
    """The fields an agent needs to pick a task up again."""
    return {
        "id": task.id,
        "name": task.name,
        "status": task.status.value,
        "queue": task.queue,
        "params": task.params,
        "external": task.external,
        "retry_attempt": task.retry_attempt,
        "submitted_at": task.submitted_at.isoformat() if task.submitted_at else None,
        "error": task.error,
    }


class JobbersTools:
    """The tools, over one client (Redis and SQL), opened by ``open`` and closed by ``close``."""

    def __init__(self, settings: Settings, validate_names: bool) -> None:
        self.settings = settings
        self.validate_names = validate_names
        self._client: JobbersClient | None = None

    @property
    def client(self) -> JobbersClient:
        if self._client is None:
            raise ToolError("the server is not connected to Redis yet")
        return self._client

    async def open(self) -> JobbersClient:
        """Connect to Redis and SQL, with the SQL schema migrated (as every long-running process)."""
        config = ConfigStore(self.settings.sql_path)
        await prepare_sql(config)
        self._client = JobbersClient(open_store(self.settings), config)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # -- writes --------------------------------------------------------------------------------

    async def enqueue_task(
        self,
        name: Annotated[str, Field(min_length=1, max_length=200, description="registered task name")],
        params: Annotated[dict[str, Any] | None, Field(description="keyword arguments of the task")] = None,
        correlation_id: CorrelationId | None = None,
        queue: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = DEFAULT_QUEUE,
        version: Annotated[int, Field(ge=1, le=2**31 - 1)] = 1,
        priority: Annotated[int | None, Field(ge=MIN_PRIORITY, le=MAX_PRIORITY)] = None,
        delay_seconds: Annotated[float | None, Field(ge=0, le=366 * 86400)] = None,
    ) -> dict[str, Any]:
        """Submit a durable task (it survives crashes of this server, the IDE and workers). Group
        a session's tasks under one correlation_id so resume_session finds them again."""
        if self.validate_names and find_task_config(name, version) is None:
            known = ", ".join(sorted({c.name for c in registered_tasks()}))
            raise ToolError(f"no task {name!r} version {version} is registered (known: {known})")
        run_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay_seconds) if delay_seconds else None
        try:
            outcome = await self.client.submit(
                name,
                params or {},
                version=version,
                queue=queue,
                correlation_id=correlation_id,
                priority=priority,
                run_at=run_at,
            )
        except (JobbersError, ValueError) as exc:
            raise ToolError(str(exc)) from None
        return {
            "id": outcome.id,
            "name": name,
            "status": outcome.status.value,
            "queue": queue,
            "correlation_id": correlation_id,
        }

    async def complete_task(
        self,
        task_id: TaskId,
        result: Annotated[Any, Field(description="any JSON value, stored as the task's result")] = None,
        token: Token = None,
    ) -> dict[str, Any]:
        """Mark an external task completed after doing its work yourself (a submitted task needs
        no token; a claimed one needs its claim's token)."""
        try:
            task = await external_tasks.complete_task(self.client.store, task_id.upper(), result, token=token)
        except JobbersError as exc:
            raise ToolError(str(exc)) from None
        return _summary(task)

    async def fail_task(
        self,
        task_id: TaskId,
        error: Annotated[str, Field(min_length=1, max_length=10_000, description="what went wrong")],
        retryable: Annotated[bool, Field(description="retry under the task type's retry policy")] = False,
        token: Token = None,
    ) -> dict[str, Any]:
        """Mark an external task failed (retryable: retried while its type allows, else failed and
        dead-lettered under its policy)."""
        try:
            task = await external_tasks.fail_task(
                self.client.store, task_id.upper(), error, retryable=retryable, token=token
            )
        except JobbersError as exc:
            raise ToolError(str(exc)) from None
        return _summary(task)

    # -- reads ---------------------------------------------------------------------------------

    async def resume_session(
        self,
        correlation_id: CorrelationId,
        limit: Annotated[int, Field(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        """The incomplete tasks of a session (submitted, scheduled, started, or failed/stalled and
        not resubmitted), oldest first: call it first in a new chat to continue where the last
        one stopped."""
        tasks = await incomplete_tasks(TaskQueries(self.client.store), correlation_id, limit)
        return {"correlation_id": correlation_id, "count": len(tasks), "tasks": [_summary(t) for t in tasks]}

    async def check_task(self, task_id: TaskId) -> dict[str, Any]:
        """A task's status, attempts, duration, progress, result or error, its last events, and its
        whole record."""
        task = await self.client.store.get_task(task_id.upper())
        if task is None:
            raise ToolError(f"no task {task_id}")
        end = task.completed_at or (dt.datetime.now(dt.UTC) if task.started_at else None)
        duration = (end - task.started_at).total_seconds() if task.started_at and end else None
        events = await EventLog(self.client.store).task_events(task.id) or []
        return {
            **_summary(task),
            "attempts": task.retry_attempt + (1 if task.started_at else 0),
            "duration_seconds": duration,
            "started_at": task.started_at.isoformat() if task.started_at else None,
            "completed_at": task.completed_at.isoformat() if task.completed_at else None,
            "last_heartbeat_at": task.last_heartbeat_at.isoformat() if task.last_heartbeat_at else None,
            "progress": task.progress.model_dump() if task.progress else None,
            "progress_at": task.progress_at.isoformat() if task.progress_at else None,
            "last_events": [e.model_dump(mode="json") for e in events[-CHECK_TASK_EVENTS:]],
            "task": _shown(task),
        }

    async def list_tasks(
        self,
        correlation_id: CorrelationId | None = None,
        status: Annotated[list[TaskStatus] | None, Field(description="default: every status")] = None,
        queue: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = None,
        task_name: Annotated[str | None, Field(min_length=1, max_length=200)] = None,
        limit: Annotated[int, Field(ge=1, le=1000)] = 50,
        cursor: Annotated[str | None, Field(max_length=512)] = None,
    ) -> dict[str, Any]:
        """Tasks by status (lifecycle order, each oldest first), filtered by correlation id,
        queue or task name; pass next_cursor back as cursor for the next page."""
        filters = TaskFilter(queue, task_name, correlation_id=correlation_id)
        try:
            page = await TaskQueries(self.client.store).list_by_status(
                list(dict.fromkeys(status)) if status else list(LISTED_STATUSES), filters, limit, cursor
            )
        except JobbersError as exc:
            raise ToolError(str(exc)) from None
        return {"tasks": [_summary(i.task) for i in page.items], "next_cursor": page.next_cursor}

    async def audit_log(
        self,
        correlation_id: CorrelationId | None = None,
        task_name: Annotated[str | None, Field(min_length=1, max_length=200)] = None,
        queue: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = None,
        type: Annotated[  # the name the REST API uses
            list[EventKind] | None, Field(description="event types; default: every type")
        ] = None,
        since: Annotated[dt.datetime | None, Field(description="ISO 8601 (UTC if no offset)")] = None,
        until: Annotated[dt.datetime | None, Field(description="ISO 8601, excluded")] = None,
        summary: Annotated[bool, Field(description="counts by type and task name instead of events")] = False,
        limit: Annotated[int, Field(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Field(max_length=512)] = None,
    ) -> dict[str, Any]:
        """What happened: the events of every transition (submitted, started, retried, failed,
        completed, progress ...), oldest first, filtered by correlation id, task name, queue,
        type and time window; pass next_cursor back as cursor. With summary, the counts by type
        and task name in the window instead (the day before until, unless since is given)."""
        since, until = _utc(since), _utc(until)
        if since is not None and until is not None and until <= since:
            raise ToolError("until must be after since")
        log = EventLog(self.client.store)
        if summary:
            now_ms = await self.client.store.redis_time_ms()
            until = until or dt.datetime.fromtimestamp(now_ms / 1000, tz=dt.UTC)
            since = since or max(until - dt.timedelta(days=1), dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
        query = AuditQuery(_ms(since), _ms(until), queue, task_name, correlation_id, frozenset(type or ()))
        if summary:
            counts = await log.summary(query)
            return {
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None,
                "total": counts.total,
                "by_type": counts.by_type,
                "by_task_name": counts.by_task_name,
            }
        try:
            page = await log.page(query, limit, cursor)
        except JobbersError as exc:
            raise ToolError(str(exc)) from None
        return {"events": [e.model_dump(mode="json") for e in page.events], "next_cursor": page.next_cursor}

    async def health(self) -> dict[str, Any]:
        """Queue depth by status, per queue, and the workers alive."""
        store = self.client.store
        queues = await store.known_queues()
        snapshot = await PlatformStats(store).snapshot(queues, minutes=1)
        stats = {s.queue: s for s in await store.queue_stats(queues)}
        return {
            "statuses": {status.value: n for status, n in snapshot.statuses.items()},
            "queues": [
                {
                    "queue": q.queue,
                    "ready": q.ready,
                    "external": stats[q.queue].external if q.queue in stats else 0,
                    "scheduled": q.scheduled,
                    "running": q.running,
                    "dead_lettered": q.dead_lettered,
                }
                for q in snapshot.queues
            ],
            "workers_alive": len(snapshot.workers),
            "dead_lettered": snapshot.dead_lettered,
        }


def build_server(tools: JobbersTools, worker_settings: Settings | None = None) -> MCPServer[Any]:
    """The MCP server with every tool; with ``worker_settings`` it also runs a worker while it runs."""

    @contextlib.asynccontextmanager
    async def lifespan(_server: MCPServer[Any]) -> AsyncIterator[None]:
        client = await tools.open()
        worker_task: asyncio.Task[None] | None = None
        worker = None
        if worker_settings is not None:
            from jobbers.worker import Worker

            assert client.config is not None
            worker = Worker(worker_settings, client.store, client.config)
            worker_task = asyncio.create_task(worker.run(handle_signals=False), name="embedded-worker")
        try:
            yield
        finally:
            if worker is not None and worker_task is not None and worker_settings is not None:
                worker.request_shutdown()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(worker_task, worker_settings.worker_shutdown_grace + 5)
            await tools.close()

    server: MCPServer[Any] = MCPServer(
        SERVER_NAME,
        instructions="Durable tasks on Jobbers: enqueue work under a correlation_id, complete or fail "
        "external tasks as you do them, and call resume_session first in a new chat.",
        lifespan=lifespan,
    )
    for name in WRITE_TOOLS:
        server.add_tool(getattr(tools, name), name=name, annotations=_WRITE)
    for name in READ_ONLY_TOOLS:
        if hasattr(tools, name):
            server.add_tool(getattr(tools, name), name=name, annotations=_READ)
    for tool in server._tool_manager.list_tools():
        _refuse_unknown_arguments(tool)
    return server


def _refuse_unknown_arguments(tool: Tool) -> None:
    """Make ``tool`` refuse an argument it does not take (the SDK drops it silently): a misspelt
    ``correlation_id`` must be an error, not a task outside its session. The input schema says so
    (``additionalProperties: false``)."""
    base = tool.fn_metadata.arg_model
    strict = type(
        base.__name__, (base,), {"model_config": ConfigDict(**{**base.model_config, "extra": "forbid"})}
    )
    tool.fn_metadata.arg_model = strict
    tool.parameters = {**tool.parameters, "additionalProperties": False}


def main(argv: list[str] | None = None) -> int:
    """``jobbers_mcp [task_module] [--with-worker] [--http [--host H] [--port P]]``."""

    def run() -> int:
        parser = argparse.ArgumentParser(
            prog="jobbers_mcp",
            description="Run the Jobbers MCP server (stdio unless --http).",
            epilog=environment_help("jobbers_mcp"),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument("task_module", nargs="?", help="module registering tasks: names are checked")
        parser.add_argument("--with-worker", action="store_true", help="also run a worker in this process")
        parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
        parser.add_argument("--host", default="127.0.0.1", help="with --http (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8765, help="with --http (default 8765)")
        args = parser.parse_args(argv)
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)  # stderr: stdout is the protocol
        if args.task_module:
            try:
                load_task_module(args.task_module)
            except JobbersError as exc:
                raise ConfigurationError(str(exc)) from None
        if args.with_worker:
            if not args.task_module or not runnable_tasks():
                raise ConfigurationError("--with-worker needs a task module that registers task functions")
            if "WORKER_TTL" not in os.environ:  # the server runs as long as the agent's session
                settings = settings.model_copy(update={"worker_ttl": 0})
        tools = JobbersTools(settings, validate_names=bool(args.task_module))
        server = build_server(tools, settings if args.with_worker else None)
        if args.http:
            server.run("streamable-http", host=args.host, port=args.port)
        else:
            server.run("stdio")
        return 0

    return run_command("jobbers_mcp", run)


__all__ = ["READ_ONLY_TOOLS", "WRITE_TOOLS", "JobbersTools", "build_server", "main"]


if __name__ == "__main__":
    raise SystemExit(main())
