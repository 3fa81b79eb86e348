"""What every command checks before it runs, and how it reports what stops it.

A command runs its body through ``run_command``: a setting that breaks its rule, a SQL URL the
async engine cannot use, an unreachable database, a busy port or an unwritable file all end as one
line, ``<command>: <reason>``, on stderr (a JSON log record under ``LOG_FORMAT=json``) and a
non-zero exit: 2 when a setting or argument must change, 1 when the environment must (start the
database, free the port). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import logging
import socket
import sys
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from jobbers.config_store import ConfigStore
from jobbers.config_store.urls import shown as shown_sql_url
from jobbers.errors import ConfigurationError, StartupError
from jobbers.logs import active_log_format
from jobbers.settings import Settings
from jobbers.state.connection import TRANSIENT_REDIS_ERRORS, connect
from jobbers.state.store import TaskStore

#: Exit status when a setting or argument must change.
EXIT_CONFIGURATION = 2
#: Exit status when the environment must change (a service is down, a port is taken).
EXIT_UNAVAILABLE = 1
#: Errors that mean "the SQL database cannot be used right now" at startup.
SQL_STARTUP_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, OSError)


def first_line(text: str) -> str:
    """The first non-empty line of ``text`` (SQLAlchemy appends a link on a second line)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def shown_redis_url(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def describe_settings_error(exc: ValidationError) -> str:
    """``invalid setting WORKER_CONCURRENT_TASKS='0': input should be greater than or equal to 1``."""
    parts = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        info = Settings.model_fields.get(field)
        secret = info is not None and "SecretStr" in str(info.annotation)
        value = "" if secret or "input" not in error else f"={error['input']!r}"
        parts.append(f"invalid setting {field.upper()}{value}: {message}")
    return "; ".join(parts)


def load_settings() -> Settings:
    """``Settings()`` from the environment; a value that breaks its rule is a ``ConfigurationError``."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError(describe_settings_error(exc)) from None


def open_store(settings: Settings) -> TaskStore:
    """The task store on ``REDIS_URL`` (no connection yet); a malformed URL is a ``ConfigurationError``."""
    url = settings.redis_url
    try:
        return TaskStore(
            connect(url, settings.redis_cluster), settings.redis_key_prefix, settings.audit_max_events
        )
    except ValueError as exc:
        raise ConfigurationError(f"REDIS_URL {shown_redis_url(url)!r} is not a Redis URL: {exc}") from None


def describe_sql_error(exc: BaseException) -> str:
    """The database's own one-line reason (``database "x" does not exist``, ``Connection refused``)."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return first_line(str(cause)) or type(cause).__name__


async def prepare_sql(config: ConfigStore) -> None:
    """Run the idempotent migration; an unusable database is a ``StartupError`` saying why."""
    try:
        await config.migrate()
    except SQL_STARTUP_ERRORS as exc:
        where = shown_sql_url(config.url)
        raise StartupError(
            f"cannot use the SQL database at SQL_PATH {where!r}: {describe_sql_error(exc)}"
        ) from None


async def redis_problem(store: TaskStore) -> str | None:
    """Why Redis does not answer PING, or None when it does."""
    try:
        await store.ping()
    except TRANSIENT_REDIS_ERRORS as exc:
        return first_line(str(exc)) or type(exc).__name__
    return None


def ensure_port_free(host: str, port: int, hint: str) -> None:
    """Fail now, with ``hint`` (which variable or flag moves the server), if ``host:port`` is taken.

    Binds and closes a socket the way uvicorn will (``SO_REUSEADDR``), so a port held by a
    listening server fails here and a port in TIME_WAIT does not.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigurationError(f"MANAGER_HOST {host!r} is not an address to listen on: {exc}") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(f"port {port} on {host} is already in use; {hint}") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ConfigurationError(f"MANAGER_HOST {host!r} is not an address of this machine") from None
            raise StartupError(f"cannot listen on {host}:{port} ({exc.strerror}); {hint}") from None


def report_fatal(prog: str, reason: str) -> None:
    """Print ``prog: reason`` on stderr, as a JSON log record when ``LOG_FORMAT=json`` is active."""
    if active_log_format() == "json":
        logging.getLogger(f"jobbers.{prog}").critical("%s: %s", prog, reason)
    else:
        print(f"{prog}: {reason}", file=sys.stderr, flush=True)


def run_command(prog: str, body: Callable[[], int]) -> int:
    """Run a command's body; what stops it from starting becomes one line and an exit status."""
    try:
        return body()
    except ConfigurationError as exc:
        report_fatal(prog, str(exc))
        return EXIT_CONFIGURATION
    except StartupError as exc:
        report_fatal(prog, str(exc))
        return EXIT_UNAVAILABLE
