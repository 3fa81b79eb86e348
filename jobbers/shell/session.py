"""One ``jobbers`` subcommand's run: settings, connections, and how what stops it becomes an exit
status and one line on stderr, never a traceback.

Exit statuses: 0 done; 1 something named was not found or is in a state that refuses the action
(the others named were still acted on); 2 usage (a bad option, argument or setting); 3 Redis or
the SQL database cannot be used (unreachable, refusing, not migrated).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from jobbers.config_store import ConfigStore, QueueDirectory
from jobbers.config_store.urls import shown as shown_sql_url
from jobbers.errors import ConfigurationError
from jobbers.logs import active_log_format, configure_logging
from jobbers.settings import Settings
from jobbers.startup import (
    describe_sql_error,
    first_line,
    load_settings,
    open_store,
    report_fatal,
    shown_redis_url,
)
from jobbers.state.connection import TRANSIENT_REDIS_ERRORS
from jobbers.state.queries import TaskQueries
from jobbers.state.stats import PlatformStats
from jobbers.state.store import TaskStore

PROG = "jobbers"
EXIT_OK = 0
EXIT_NOT_DONE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


class ShellError(Exception):
    """Stops a subcommand: ``message`` is printed as ``jobbers: <message>``, then exit ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def note(message: str) -> None:
    """Say something on stderr, beside the rows on stdout (a task that was not found while the
    command goes on with the others, a live feed's state): ``jobbers: <message>``, or a JSON log
    record under ``LOG_FORMAT=json``."""
    if active_log_format() == "json":
        logging.getLogger("jobbers.shell").warning("%s: %s", PROG, message)
    else:
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)


@dataclass
class Session:
    """What a subcommand works with: the stores of the deployment the settings name."""

    settings: Settings
    store: TaskStore
    queries: TaskQueries
    stats: PlatformStats
    #: Only for subcommands that read the queue configuration (``sql=True``).
    config: ConfigStore | None = None
    queues: QueueDirectory | None = None

    def require_config(self) -> tuple[ConfigStore, QueueDirectory]:
        """The queue configuration and its directory (a subcommand that reads them opens with
        ``sql=True``)."""
        assert self.config is not None and self.queues is not None, "opened without sql=True"
        return self.config, self.queues


#: What a subcommand does once connected: returns its exit status.
Body = Callable[[Session], Awaitable[int]]


def run_session(body: Body, *, sql: bool = False, interrupt_ok: bool = False) -> int:
    """Run ``body`` against Redis (and SQL with ``sql``) from the settings; returns the exit status.

    Redis is pinged (and SQL queried) before ``body`` runs, so an unreachable service is exit 3
    before anything is printed or changed. Ctrl-C is exit 130, or 0 with ``interrupt_ok`` (the
    live views, which run until it).
    """
    try:
        settings = load_settings()
        # An operator's shell: warnings and errors only, unless LOG_LEVEL asks for more.
        level = settings.log_level if "log_level" in settings.model_fields_set else "WARNING"
        configure_logging(level, settings.log_format)
        return _run(_open_and_run(settings, body, sql))
    except ShellError as exc:
        report_fatal(PROG, str(exc))
        return exc.code
    except ConfigurationError as exc:
        report_fatal(PROG, str(exc))
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (``| head``): what it wanted was written. Silence the final flush.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_OK if interrupt_ok else 130


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


async def _open_and_run(settings: Settings, body: Body, sql: bool) -> int:
    store = open_store(settings)
    config: ConfigStore | None = None
    try:
        await _checked_redis(settings, store.ping())
        if sql:
            config = ConfigStore(settings.sql_path)
            await _checked_sql(settings, config.list_queues())
        session = Session(
            settings,
            store,
            TaskQueries(store),
            PlatformStats(store),
            config,
            QueueDirectory(config) if config else None,
        )
        try:
            return await body(session)
        except BrokenPipeError:
            raise
        except SQLAlchemyError as exc:
            raise _sql_unavailable(settings, exc) from None
        except TRANSIENT_REDIS_ERRORS as exc:
            if sql and isinstance(exc, OSError):
                # A bare socket error mid-command may come from either connection.
                raise ShellError(f"lost the connection to Redis or SQL: {exc}", EXIT_UNAVAILABLE) from None
            raise _redis_unavailable(settings, exc) from None
    finally:
        if config is not None:
            await config.close()
        await store.close()


async def _checked_redis(settings: Settings, call: Awaitable[object]) -> None:
    try:
        await call
    except TRANSIENT_REDIS_ERRORS as exc:
        raise _redis_unavailable(settings, exc) from None


async def _checked_sql(settings: Settings, call: Awaitable[object]) -> None:
    try:
        await call
    except (SQLAlchemyError, OSError) as exc:
        raise _sql_unavailable(settings, exc) from None


def _redis_unavailable(settings: Settings, exc: BaseException) -> ShellError:
    reason = first_line(str(exc)) or type(exc).__name__
    where = shown_redis_url(settings.redis_url)
    return ShellError(f"cannot use Redis at REDIS_URL {where!r}: {reason}", EXIT_UNAVAILABLE)


def _sql_unavailable(settings: Settings, exc: BaseException) -> ShellError:
    reason = describe_sql_error(exc)
    where = shown_sql_url(settings.sql_path)
    hint = " (run `jobbers migrate` to create the tables)" if "no such table" in reason else ""
    return ShellError(f"cannot use the SQL database at SQL_PATH {where!r}: {reason}{hint}", EXIT_UNAVAILABLE)
