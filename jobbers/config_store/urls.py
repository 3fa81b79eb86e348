"""What is wrong with a SQL URL that SQLAlchemy's async engine refuses, said in the user's terms.

Jobbers talks to SQL through asyncio, so ``SQL_PATH`` must name an async driver. The usual
mistakes (``postgresql://``, ``sqlite:///x.db``, a driver that is not installed, no URL at all)
get one sentence that names the URL form to use instead.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, InvalidRequestError, NoSuchModuleError

#: The async driver Jobbers ships with, per database kind.
ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
EXAMPLES = "sqlite+aiosqlite:///jobbers.db or postgresql+asyncpg://user:password@host:5432/dbname"


def shown(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def suggested_url(url: URL) -> str | None:
    """The same URL with the async driver Jobbers ships for its database kind, if it has one."""
    driver = ASYNC_DRIVERS.get(url.get_backend_name())
    if driver is None:
        return None
    return url.set(drivername=f"{url.get_backend_name()}+{driver}").render_as_string(hide_password=True)


def explain_engine_error(url: str, exc: Exception) -> str | None:
    """One sentence on why ``create_async_engine(url)`` raised ``exc``; None if it is not a URL problem."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"SQL_PATH {url!r} is not a database URL; use {EXAMPLES}"
    name = shown(url)
    suggestion = suggested_url(parsed)
    use = f"use {suggestion}" if suggestion else f"use an async driver, e.g. {EXAMPLES}"
    if isinstance(exc, NoSuchModuleError):
        return f"SQL_PATH {name!r} names an unknown database or driver {parsed.drivername!r}; {use}"
    default = "+" not in parsed.drivername
    if isinstance(exc, InvalidRequestError) and "async" in str(exc):
        driver = parsed.get_driver_name()
        what = f"names no driver, and the default, {driver!r}," if default else f"uses {driver!r}, which"
        return f"SQL_PATH {name!r} {what} is synchronous, but Jobbers needs an async driver; {use}"
    if isinstance(exc, ImportError):
        missing = exc.name or str(exc)
        what = f"names no driver, and the default, {missing!r}," if default else f"needs {missing!r}, which"
        return f"SQL_PATH {name!r} {what} is not installed; {use}"
    return None
