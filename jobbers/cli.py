"""Console entry points: parse arguments, build settings, call into the rooms.

Every command's ``--help`` lists the environment variables it reads (``jobbers.env_help``), and
every command runs through ``jobbers.startup.run_command``: what stops it from starting is one
line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import gc

# A worker recycled every WORKER_TTL tasks starts (and exits) often. The imports below, and those a
# command makes before it runs (its room, telemetry, the task module), allocate about a million
# objects, and the cyclic garbage collector traversed them again and again: a third of the import
# time. It is paused while they run (``_loading``); what start-up loaded is then frozen
# (``gc.freeze``), so neither later collections nor the interpreter's final one at exit traverse it.
_COLLECTING = gc.isenabled()
gc.disable()

import argparse
import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from jobbers.config_store import ConfigStore
from jobbers.errors import ConfigurationError, JobbersError, StartupError
from jobbers.logs import configure_logging
from jobbers.process import Turn, run_forked_lifetimes
from jobbers.recurring_entries import store_declared_recurring
from jobbers.registry import load_task_module, runnable_tasks
from jobbers.settings import Settings
from jobbers.startup import (
    EXIT_CONFIGURATION,
    ensure_port_free,
    load_settings,
    open_store,
    prepare_sql,
    redis_problem,
    run_command,
    shown_redis_url,
)
from jobbers.state.connection import TRANSIENT_REDIS_ERRORS
from jobbers.state.store import TaskStore
from jobbers.telemetry import Telemetry, export_interval_seconds, setup_telemetry

# Each command imports the room it runs (worker, scheduler, cleaner, manager) when it runs: a
# worker recycled every WORKER_TTL tasks does not load the others at each start
# (tests/test_lazy_imports.py).

if _COLLECTING:
    gc.enable()

log = logging.getLogger(__name__)


@contextmanager
def _loading() -> Iterator[None]:
    """Pause the garbage collector while a command loads what it runs, then freeze what it loaded."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


def _setup_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def _parser(prog: str, description: str, note: str = "") -> argparse.ArgumentParser:
    """A parser whose ``--help`` ends with the environment variables ``prog`` reads."""
    from jobbers.env_help import environment_help

    return argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=environment_help(prog, note),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


async def _prepare_config(config: ConfigStore) -> None:
    """Migrate the SQL schema and store the recurring entries the task module declares."""
    await prepare_sql(config)
    await store_declared_recurring(config)


@asynccontextmanager
async def _services(
    settings: Settings, prepared: bool = False
) -> AsyncIterator[tuple[TaskStore, ConfigStore]]:
    """Redis and SQL for a long-running process, with the SQL schema migrated (unless ``prepared``
    already); closed on exit."""
    store = open_store(settings)
    try:
        config = ConfigStore(settings.sql_path)
        try:
            if not prepared:
                await _prepare_config(config)
            yield store, config
        finally:
            await config.close()
    finally:
        await store.close()


def _start_with_task_module(
    prog: str, description: str, argv: list[str] | None, require_tasks: bool = False, worker: bool = False
) -> Settings:
    """Parse ``<task_module>`` (and, with ``worker``, the worker's flags, which win over their
    variables), read settings, set up logging and import the user's tasks."""
    parser = _parser(prog, description)
    parser.add_argument("task_module", help="dotted module name or path to a .py file registering tasks")
    if worker:
        parser.add_argument(
            "--burst", action="store_true", help="run what the queues hold, then exit 0 (WORKER_BURST)"
        )
        parser.add_argument(
            "--max-seconds",
            type=float,
            metavar="SECONDS",
            default=None,
            help="a burst run stops claiming after this long (WORKER_BURST_MAX_SECONDS)",
        )
        parser.add_argument(
            "--recycle",
            choices=("exit", "fork"),
            default=None,
            help="after WORKER_TTL tasks, exit (for a supervisor) or fork a fresh worker (WORKER_RECYCLE)",
        )
    args = parser.parse_args(argv)
    if worker and args.max_seconds is not None and args.max_seconds < 0:
        parser.error("--max-seconds must not be negative")
    settings = load_settings()
    if worker:
        changes: dict[str, object] = {"worker_burst": True} if args.burst else {}
        if args.max_seconds is not None:
            changes["worker_burst_max_seconds"] = args.max_seconds
        if args.recycle is not None:
            changes["worker_recycle"] = args.recycle
        if changes:
            settings = settings.model_copy(update=changes)
    _setup_logging(settings)
    try:
        load_task_module(args.task_module)
    except JobbersError as exc:
        raise ConfigurationError(str(exc)) from None
    if require_tasks and not runnable_tasks():
        raise ConfigurationError(
            f"task module {args.task_module!r} registers no tasks (no @register_task ran when it was "
            "imported; external tasks are run by outside processes); a worker without tasks would "
            "drop every task it claims"
        )
    return settings


def worker_main(argv: list[str] | None = None) -> int:
    """``jobbers_worker [--burst [--max-seconds S]] [--recycle exit|fork] <task_module>``: run a
    worker for ``WORKER_ROLE`` (with ``--burst``, until its queues are drained)."""
    return run_command("jobbers_worker", lambda: _worker(argv))


def _worker(argv: list[str] | None) -> int:
    with _loading():
        settings = _start_with_task_module(
            "jobbers_worker", "Run a Jobbers worker.", argv, require_tasks=True, worker=True
        )
        from jobbers.worker import Worker

        forking = settings.worker_recycle == "fork" and settings.worker_ttl > 0 and not settings.worker_burst
        if forking:
            _preload_worker_lifetime(settings)
        else:
            telemetry = setup_telemetry("jobbers-worker")

    def lifetime(telemetry: Telemetry, turn: Turn) -> int:
        async def main() -> int:
            async with _services(settings, prepared=forking) as (store, config):
                worker = Worker(settings, store, config)
                if turn.queued:  # a forked worker reads its queues, then waits for the one before it
                    await redis_problem(store)
                    await worker.refresh_config()
                    if not turn.wait():
                        return 0
                await worker.run()
                turn.done()
            return 0

        try:
            return _run(main())
        finally:
            gc.freeze()  # the interpreter's final collection at exit then has nothing to traverse
            telemetry.shutdown()

    if not forking:
        return lifetime(telemetry, Turn())

    async def prepare() -> int:  # once for every lifetime; it leaves no loop, connection or thread
        config = ConfigStore(settings.sql_path)
        try:
            await _prepare_config(config)
        finally:
            await config.close()
        return 0

    _run(prepare())
    gc.collect()
    gc.freeze()  # the children's collections never traverse (and so never copy) what the parent loaded

    # Each child makes its own event loop, connections and telemetry providers (and threads).
    def child(turn: Turn) -> int:
        return run_command("jobbers_worker", lambda: lifetime(setup_telemetry("jobbers-worker"), turn))

    log.info("worker parent %d forks a worker for each WORKER_TTL=%d tasks", os.getpid(), settings.worker_ttl)
    return run_forked_lifetimes(child, final_statuses=(EXIT_CONFIGURATION,))


def _preload_worker_lifetime(settings: Settings) -> None:
    """Load, in a ``WORKER_RECYCLE=fork`` parent, what each forked worker would load at its start
    (its event loop, the telemetry SDK's providers, the Lua scripts' sources and function
    libraries), so no child pays."""
    from jobbers.state.scripts import SCRIPT_NAMES, function_library, script_source

    for name in SCRIPT_NAMES:
        script_source(name, audit_max_events=settings.audit_max_events)
        function_library(name, audit_max_events=settings.audit_max_events)

    import opentelemetry.sdk.metrics
    import opentelemetry.sdk.resources
    import opentelemetry.sdk.trace
    import opentelemetry.sdk.trace.export  # noqa: F401

    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401


def scheduler_main(argv: list[str] | None = None) -> int:
    """``jobbers_scheduler``: promote due tasks of ``SCHEDULER_ROLE``'s queues."""
    return run_command("jobbers_scheduler", lambda: _scheduler(argv))


def _scheduler(argv: list[str] | None) -> int:
    from jobbers.scheduler import Scheduler

    _parser("jobbers_scheduler", "Run the Jobbers scheduler.").parse_args(argv)
    settings = load_settings()
    _setup_logging(settings)
    telemetry = setup_telemetry("jobbers-scheduler")
    # Queue gauges are refreshed at least once per export (and per poll interval).
    stats_interval = min(export_interval_seconds(), settings.scheduler_poll_interval)

    async def main() -> int:
        async with _services(settings) as (store, config):
            await Scheduler(
                settings, store, config, stats_interval if telemetry.metrics_enabled else None
            ).run()
        return 0

    try:
        return _run(main())
    finally:
        telemetry.shutdown()


def cleaner_main(argv: list[str] | None = None) -> int:
    """``jobbers_cleaner [--stale-time S] ...``: one maintenance pass; prints counts as JSON."""
    return run_command("jobbers_cleaner", lambda: _cleaner(argv))


def _cleaner(argv: list[str] | None) -> int:
    from jobbers.cleaner import CleanerOptions, run_cleaner

    parser = _parser("jobbers_cleaner", "One Jobbers maintenance pass.")
    for flag, text in (
        ("--stale-time", "mark tasks whose heartbeat is older than this as stalled"),
        ("--completed-task-age", "delete terminal tasks older than this"),
        ("--dlq-age", "remove dead letter entries older than this"),
        ("--rate-limit-age", "prune rate-limit entries older than this"),
        ("--min-queue-age", "only consider tasks submitted at or after this epoch time"),
        ("--max-queue-age", "only consider tasks submitted at or before this epoch time"),
        ("--audit-age", "remove audit log events older than this (default: AUDIT_MAX_AGE_SECONDS)"),
    ):
        parser.add_argument(flag, type=float, metavar="SECONDS", default=None, help=text)
    args = parser.parse_args(argv)
    for name, value in vars(args).items():
        if value is not None and value < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    settings = load_settings()
    _setup_logging(settings)
    if args.audit_age is None:
        args.audit_age = settings.audit_max_age_seconds
    options = CleanerOptions(**vars(args))
    telemetry = setup_telemetry("jobbers-cleaner")

    async def main() -> int:
        store = open_store(settings)
        try:
            report = await run_cleaner(store, options)
        except TRANSIENT_REDIS_ERRORS as exc:
            raise StartupError(
                f"cannot reach Redis at REDIS_URL {shown_redis_url(settings.redis_url)!r}: {exc}"
            ) from None
        finally:
            await store.close()
        print(json.dumps(report.counts()))
        return 0

    try:
        return _run(main())
    finally:
        # One-shot: shutdown force-flushes this pass's counts now; no later interval will.
        telemetry.shutdown()


def manager_main(argv: list[str] | None = None) -> int:
    """``jobbers_manager <task_module>``: serve the REST API on ``MANAGER_HOST``:``MANAGER_PORT``
    (in ``MANAGER_WORKERS`` processes)."""
    return run_command("jobbers_manager", lambda: _manager(argv))


async def _check_manager_services(settings: Settings) -> int:
    """SQL must work (startup migrates it); Redis may be down: the API answers 503 until it is up."""
    from jobbers.state.upgrade import old_layout_present

    async with _services(settings) as (store, _config):
        problem = await redis_problem(store)
        if problem is None and await old_layout_present(store):
            log.warning(
                "Redis at REDIS_URL %r holds tasks in the layout before per-queue key spaces, which this "
                "version does not see: stop the old processes and run jobbers_migrate --redis",
                shown_redis_url(settings.redis_url),
            )
    if problem is not None:
        log.warning(
            "Redis at REDIS_URL %r is unreachable (%s); endpoints that need it answer 503 until it is",
            shown_redis_url(settings.redis_url),
            problem,
        )
    return 0


def _manager(argv: list[str] | None) -> int:
    settings = _start_with_task_module("jobbers_manager", "Run the Jobbers REST API.", argv)
    ensure_port_free(
        settings.manager_host,
        settings.manager_port,
        "set MANAGER_PORT (or MANAGER_HOST) to listen elsewhere",
    )
    _run(_check_manager_services(settings))
    # Imported here so the other entry points do not pay for loading FastAPI.
    from jobbers.manager.serve import serve

    # With MANAGER_WORKERS > 1 each worker process sets up its own telemetry (serve.worker_app).
    telemetry = setup_telemetry("jobbers-manager") if settings.manager_workers == 1 else None
    try:
        serve(settings)
    finally:
        if telemetry is not None:
            telemetry.shutdown()
    return 0


def openapi_main(argv: list[str] | None = None) -> int:
    """``jobbers_openapi [path]``: write the API's OpenAPI document (default ``openapi.json``)."""
    return run_command("jobbers_openapi", lambda: _openapi(argv))


def _openapi(argv: list[str] | None) -> int:
    parser = _parser("jobbers_openapi", "Write the OpenAPI spec.")
    parser.add_argument("path", nargs="?", default="openapi.json", help="output file (default: openapi.json)")
    args = parser.parse_args(argv)
    settings = load_settings()
    from jobbers.manager import create_app

    # Building the app opens no connection; they are made at startup, which never happens here.
    spec = create_app(settings).openapi()
    try:
        with open(args.path, "w", encoding="utf-8") as out:
            json.dump(spec, out, indent=2)
            out.write("\n")
    except OSError as exc:
        raise StartupError(f"cannot write {args.path}: {exc.strerror or exc}") from None
    print(f"jobbers_openapi: wrote {args.path}")
    return 0


def migrate_main(argv: list[str] | None = None) -> int:
    """``jobbers_migrate``: run the versioned SQL schema migrations and create the ``default`` queue."""
    return run_command("jobbers_migrate", lambda: _migrate(argv))


def _migrate(argv: list[str] | None) -> int:
    from jobbers.config_store import schema
    from jobbers.config_store.urls import shown as shown_sql_url
    from jobbers.state.upgrade import upgrade_layout

    parser = _parser(
        "jobbers_migrate",
        "Bring Jobbers' SQL schema to the newest revision (versioned migrations; safe to re-run).",
    )
    parser.add_argument(
        "--redis",
        action="store_true",
        help="also upgrade Redis data written before queues had their own key spaces (stop the old "
        "processes first; safe to run again)",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    _setup_logging(settings)

    async def main() -> int:
        config = ConfigStore(settings.sql_path)
        try:
            await prepare_sql(config)
        finally:
            await config.close()
        print(
            f"jobbers_migrate: schema at revision {schema.HEAD_REVISION} (newest) "
            f"at {shown_sql_url(settings.sql_path)}"
        )
        if args.redis:
            store = open_store(settings)
            try:
                report = await upgrade_layout(store)
            except TRANSIENT_REDIS_ERRORS as exc:
                raise StartupError(
                    f"cannot reach Redis at REDIS_URL {shown_redis_url(settings.redis_url)!r}: {exc}"
                ) from None
            finally:
                await store.close()
            where = shown_redis_url(settings.redis_url)
            if report.moved_anything:
                print(
                    f"jobbers_migrate: Redis data at {where} upgraded: {report.tasks} tasks, "
                    f"{report.queue_keys} queue keys, {report.index_entries} index entries, "
                    f"{report.other_keys} other keys moved into per-queue key spaces"
                )
            else:
                print(f"jobbers_migrate: Redis data at {where} is already in per-queue key spaces")
        return 0

    return _run(main())
