"""Console entry points: parse arguments, build settings, call into the rooms."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Coroutine
from typing import Any

from jobbers.cleaner import CleanerOptions, run_cleaner
from jobbers.config_store import ConfigStore
from jobbers.errors import JobbersError
from jobbers.logs import configure_logging
from jobbers.registry import load_task_module
from jobbers.scheduler import Scheduler
from jobbers.settings import Settings
from jobbers.state.connection import TRANSIENT_REDIS_ERRORS, connect
from jobbers.state.store import TaskStore
from jobbers.telemetry import export_interval_seconds, setup_telemetry
from jobbers.worker import Worker


def _setup_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def _stores(settings: Settings) -> tuple[TaskStore, ConfigStore]:
    return TaskStore(connect(settings.redis_url), settings.redis_key_prefix), ConfigStore(settings.sql_path)


def _start_with_task_module(prog: str, description: str, argv: list[str] | None) -> Settings:
    """Parse ``<task_module>``, read settings, set up logging and import the user's tasks."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("task_module", help="dotted module name or path to a .py file registering tasks")
    args = parser.parse_args(argv)
    settings = Settings()
    _setup_logging(settings)
    try:
        load_task_module(args.task_module)
    except JobbersError as exc:
        parser.exit(2, f"{prog}: {exc}\n")
    return settings


def worker_main(argv: list[str] | None = None) -> int:
    """``jobbers_worker <task_module>``: run a worker for ``WORKER_ROLE``."""
    settings = _start_with_task_module("jobbers_worker", "Run a Jobbers worker.", argv)

    telemetry = setup_telemetry("jobbers-worker")

    async def main() -> int:
        store, config = _stores(settings)
        await config.migrate()
        try:
            await Worker(settings, store, config).run()
        finally:
            await config.close()
            await store.close()
        return 0

    try:
        return _run(main())
    finally:
        telemetry.shutdown()


def scheduler_main(argv: list[str] | None = None) -> int:
    """``jobbers_scheduler``: promote due tasks of ``SCHEDULER_ROLE``'s queues."""
    argparse.ArgumentParser(prog="jobbers_scheduler", description="Run the Jobbers scheduler.").parse_args(
        argv
    )
    settings = Settings()
    _setup_logging(settings)
    telemetry = setup_telemetry("jobbers-scheduler")
    # Queue gauges are refreshed at least once per export (and per poll interval).
    stats_interval = min(export_interval_seconds(), settings.scheduler_poll_interval)

    async def main() -> int:
        store, config = _stores(settings)
        await config.migrate()
        try:
            await Scheduler(
                settings, store, config, stats_interval if telemetry.metrics_enabled else None
            ).run()
        finally:
            await config.close()
            await store.close()
        return 0

    try:
        return _run(main())
    finally:
        telemetry.shutdown()


def cleaner_main(argv: list[str] | None = None) -> int:
    """``jobbers_cleaner [--stale-time S] ...``: one maintenance pass; prints counts as JSON."""
    parser = argparse.ArgumentParser(prog="jobbers_cleaner", description="One Jobbers maintenance pass.")
    for flag, text in (
        ("--stale-time", "mark tasks whose heartbeat is older than this as stalled"),
        ("--completed-task-age", "delete terminal tasks older than this"),
        ("--dlq-age", "remove dead letter entries older than this"),
        ("--rate-limit-age", "prune rate-limit entries older than this"),
        ("--min-queue-age", "only consider tasks submitted at or after this epoch time"),
        ("--max-queue-age", "only consider tasks submitted at or before this epoch time"),
    ):
        parser.add_argument(flag, type=float, metavar="SECONDS", default=None, help=text)
    args = parser.parse_args(argv)
    for name, value in vars(args).items():
        if value is not None and value < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    settings = Settings()
    _setup_logging(settings)
    options = CleanerOptions(**vars(args))
    telemetry = setup_telemetry("jobbers-cleaner")

    async def main() -> int:
        store = TaskStore(connect(settings.redis_url), settings.redis_key_prefix)
        try:
            report = await run_cleaner(store, options)
        except TRANSIENT_REDIS_ERRORS as exc:
            print(f"jobbers_cleaner: cannot reach Redis at {settings.redis_url}: {exc}", file=sys.stderr)
            return 1
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
    settings = _start_with_task_module("jobbers_manager", "Run the Jobbers REST API.", argv)
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
    parser = argparse.ArgumentParser(prog="jobbers_openapi", description="Write the OpenAPI spec.")
    parser.add_argument("path", nargs="?", default="openapi.json", help="output file (default: openapi.json)")
    args = parser.parse_args(argv)
    from jobbers.manager import create_app

    # Building the app opens no connection; they are made at startup, which never happens here.
    spec = create_app(Settings()).openapi()
    with open(args.path, "w", encoding="utf-8") as out:
        json.dump(spec, out, indent=2)
        out.write("\n")
    print(f"jobbers_openapi: wrote {args.path}")
    return 0


def migrate_main(argv: list[str] | None = None) -> int:
    """``jobbers_migrate``: create the SQL tables and the ``default`` queue."""
    argparse.ArgumentParser(prog="jobbers_migrate", description="Create Jobbers' SQL tables.").parse_args(
        argv
    )
    settings = Settings()
    _setup_logging(settings)

    async def main() -> int:
        config = ConfigStore(settings.sql_path)
        try:
            await config.migrate()
        finally:
            await config.close()
        print(f"jobbers_migrate: schema ready at {settings.sql_path}")
        return 0

    return _run(main())
