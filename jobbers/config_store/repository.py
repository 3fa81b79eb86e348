"""Async repository over the queue/role tables; the only code that speaks SQL."""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, event, insert, select, text, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from jobbers.config_store import schema
from jobbers.config_store.tables import queues, recurring, role_queues, roles
from jobbers.config_store.urls import explain_engine_error
from jobbers.errors import ConfigurationError, QueueNotFoundError
from jobbers.models.queue_config import DEFAULT_QUEUE, QueueConfig, RatePeriod
from jobbers.models.recurring import RecurringEntry
from jobbers.models.role import DEFAULT_ROLE, Role, queues_for_role

#: Errors that mean "the SQL database is unreachable right now" (the manager answers 503).
SQL_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    OSError,
)


#: Alembic keeps its running migration in module globals: one migration at a time per event loop.
_MIGRATION_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _migration_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _MIGRATION_LOCKS.get(loop)
    if lock is None:
        lock = _MIGRATION_LOCKS[loop] = asyncio.Lock()
    return lock


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class ConfigStore:
    """Queues and roles. ``migrate()`` creates the tables and the ``default`` queue.

    Building one opens no connection; a URL the async engine cannot use (a synchronous or missing
    driver, not a URL at all) raises ``ConfigurationError`` saying which URL form to use.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine: AsyncEngine = create_async_engine(url, pool_pre_ping=True)
        except Exception as exc:
            reason = explain_engine_error(url, exc)
            if reason is None:
                raise
            raise ConfigurationError(reason) from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _enable_sqlite_foreign_keys)

    async def close(self) -> None:
        await self.engine.dispose()

    async def migrate(self) -> None:
        """Run the schema migrations and create the ``default`` queue; safe to run any number of
        times, and by several processes starting at once (a migration that lost the race to
        another process is retried on the schema that process left)."""
        for attempt in range(3):
            try:
                async with _migration_lock(), self.engine.begin() as conn:
                    await conn.run_sync(schema.upgrade)
                break
            except (IntegrityError, OperationalError, ProgrammingError):
                if attempt == 2:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        async with self.engine.begin() as conn:
            exists = await conn.scalar(select(queues.c.name).where(queues.c.name == DEFAULT_QUEUE))
            if exists is None:
                await conn.execute(
                    insert(queues).values(name=DEFAULT_QUEUE, rate_denominator=1, rate_period="second")
                )

    async def ping(self) -> None:
        """Run a trivial query; raises one of ``SQL_UNAVAILABLE_ERRORS`` when the database is down."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # -- queues -----------------------------------------------------------------------------

    async def list_queues(self) -> list[QueueConfig]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(queues).order_by(queues.c.name))).mappings().all()
        return [_queue_from_row(r) for r in rows]

    async def get_queue(self, name: str) -> QueueConfig | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(queues).where(queues.c.name == name))).mappings().first()
        return _queue_from_row(row) if row else None

    async def save_queue(self, config: QueueConfig) -> bool:
        """Create or replace a queue; returns True if it was created."""
        values = _queue_values(config)
        async with self.engine.begin() as conn:
            result = await conn.execute(update(queues).where(queues.c.name == config.name).values(**values))
            if result.rowcount:
                return False
            await conn.execute(insert(queues).values(name=config.name, **values))
            return True

    async def change_queue(
        self, name: str, changes: Mapping[str, Any], create: bool
    ) -> tuple[QueueConfig | None, bool]:
        """Set the settings in ``changes`` (``QueueConfig`` field names) on queue ``name``, leaving
        the others as stored, in one transaction (two requests changing different settings at once
        both stick). A missing queue is created, with defaults for the rest, when ``create``.

        Returns the queue as it is now (None when missing and not created), and whether it was created.
        """
        try:
            return await self._change_queue_once(name, changes, create)
        except IntegrityError:
            # A concurrent request created the queue between our look and our insert: change it.
            return await self._change_queue_once(name, changes, create)

    async def _change_queue_once(
        self, name: str, changes: Mapping[str, Any], create: bool
    ) -> tuple[QueueConfig | None, bool]:
        values = {k: v.value if isinstance(v, RatePeriod) else v for k, v in changes.items()}
        async with self.engine.begin() as conn:
            exists = await conn.scalar(select(queues.c.name).where(queues.c.name == name))
            if exists is None:
                if not create:
                    return None, False
                new = _queue_values(QueueConfig(name=name, **changes))
                await conn.execute(insert(queues).values(name=name, **new))
            elif values:
                await conn.execute(update(queues).where(queues.c.name == name).values(**values))
            row = (await conn.execute(select(queues).where(queues.c.name == name))).mappings().one()
        return _queue_from_row(row), exists is None

    async def create_queue(self, config: QueueConfig) -> bool:
        """Create a queue; returns False (and changes nothing) if one with its name exists."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(queues).values(name=config.name, **_queue_values(config)))
        except IntegrityError:
            return False
        return True

    async def delete_queue(self, name: str) -> bool:
        async with self.engine.begin() as conn:
            await conn.execute(delete(role_queues).where(role_queues.c.queue == name))
            result = await conn.execute(delete(queues).where(queues.c.name == name))
            return bool(result.rowcount)

    # -- roles ------------------------------------------------------------------------------

    async def list_roles(self) -> list[Role]:
        """Every stored role by name, each with its queues in the role's order."""
        async with self.engine.connect() as conn:
            names = (await conn.execute(select(roles.c.name).order_by(roles.c.name))).scalars().all()
            ordered_links = select(role_queues.c.role, role_queues.c.queue).order_by(*_ORDER)
            links = (await conn.execute(ordered_links)).all()
        by_role: dict[str, list[str]] = {n: [] for n in names}
        for role, queue in links:
            by_role.setdefault(role, []).append(queue)
        return [Role(name=n, queues=by_role[n]) for n in names]

    async def get_role(self, name: str) -> Role | None:
        """A role with its queues in the role's order (the implicit ``default`` role when not stored)."""
        async with self.engine.connect() as conn:
            role, _ordered = await _read_role(conn, name)
        return role

    async def save_role(self, role: Role) -> bool:
        """Create or replace a role's queue list, keeping its order (a repeated queue counts once,
        where it first comes); raises ``QueueNotFoundError`` for unknown queues."""
        async with self.engine.begin() as conn:
            await _check_queues_exist(conn, role.queues)
            exists = await conn.scalar(select(roles.c.name).where(roles.c.name == role.name))
            if exists is None:
                await conn.execute(insert(roles).values(name=role.name))
            await conn.execute(delete(role_queues).where(role_queues.c.role == role.name))
            if role.queues:
                await conn.execute(insert(role_queues), _role_links(role))
            return exists is None

    async def create_role(self, role: Role) -> bool:
        """Create a role (its queues in the order given); returns False if it exists. Raises
        ``QueueNotFoundError`` for unknown queues."""
        try:
            async with self.engine.begin() as conn:
                await _check_queues_exist(conn, role.queues)
                await conn.execute(insert(roles).values(name=role.name))
                if role.queues:
                    await conn.execute(insert(role_queues), _role_links(role))
        except IntegrityError:
            return False
        return True

    async def delete_role(self, name: str) -> bool:
        async with self.engine.begin() as conn:
            await conn.execute(delete(role_queues).where(role_queues.c.role == name))
            result = await conn.execute(delete(roles).where(roles.c.name == name))
            return bool(result.rowcount)

    async def role_queues(self, role_name: str) -> tuple[list[QueueConfig], bool]:
        """The queue configs a worker of ``role_name`` consumes (see ``models.role.queues_for_role``),
        and whether it drains them in that order: True for a role saved with an explicit queue list;
        False for ``default`` with no list (every queue) and for a role saved before the order was
        kept (revision 0003), whose workers rotate among the queues so none starves."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(queues).order_by(queues.c.name))).mappings().all()
            role, ordered = await _read_role(conn, role_name)
        all_queues = [_queue_from_row(r) for r in rows]
        names = queues_for_role(role, [q.name for q in all_queues])
        by_name = {q.name: q for q in all_queues}
        return [by_name[n] for n in names], ordered

    async def queues_for_role(self, role_name: str) -> list[QueueConfig]:
        """The queue configs a worker of ``role_name`` consumes, in the role's order."""
        found, _in_order = await self.role_queues(role_name)
        return found

    # -- recurring entries ------------------------------------------------------------------

    async def list_recurring(self, queue: str | None = None) -> list[RecurringEntry]:
        query = select(recurring).order_by(recurring.c.key)
        if queue is not None:
            query = query.where(recurring.c.queue == queue)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_recurring_from_row(r) for r in rows]

    async def get_recurring(self, key: str) -> RecurringEntry | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(recurring).where(recurring.c.key == key))).mappings().first()
        return _recurring_from_row(row) if row else None

    async def save_recurring(self, entry: RecurringEntry) -> bool:
        """Create or replace an entry (its fire history stays); returns True if it was created.

        Raises ``QueueNotFoundError`` when its queue does not exist.
        """
        values = _recurring_values(entry)
        async with self.engine.begin() as conn:
            if await conn.scalar(select(queues.c.name).where(queues.c.name == entry.queue)) is None:
                raise QueueNotFoundError(f"queue {entry.queue!r} does not exist")
            values.pop("created_at_ms")
            values.pop("last_fire_ms")
            result = await conn.execute(
                update(recurring).where(recurring.c.key == entry.key).values(**values)
            )
            if result.rowcount:
                return False
            await conn.execute(
                insert(recurring).values(
                    key=entry.key,
                    created_at_ms=entry.created_at_ms,
                    last_fire_ms=entry.last_fire_ms,
                    **values,
                )
            )
            return True

    async def set_recurring_paused(self, key: str, paused: bool) -> RecurringEntry | None:
        async with self.engine.begin() as conn:
            await conn.execute(update(recurring).where(recurring.c.key == key).values(paused=paused))
            row = (await conn.execute(select(recurring).where(recurring.c.key == key))).mappings().first()
        return _recurring_from_row(row) if row else None

    async def delete_recurring(self, key: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(recurring).where(recurring.c.key == key))
            return bool(result.rowcount)

    async def record_fired(self, key: str, fire_ms: int) -> None:
        """Remember that ``key`` was enqueued up to ``fire_ms`` (never moves back)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(recurring)
                .where(recurring.c.key == key)
                .where((recurring.c.last_fire_ms.is_(None)) | (recurring.c.last_fire_ms < fire_ms))
                .values(last_fire_ms=fire_ms)
            )


#: A role's queues in its order; links saved before the order was kept (position 0) by name.
_ORDER = (role_queues.c.role, role_queues.c.position, role_queues.c.queue)


async def _read_role(conn: AsyncConnection, name: str) -> tuple[Role | None, bool]:
    """Role ``name`` with its queues in order (None when missing, but for the implicit ``default``),
    and whether an order was recorded for them (every position from 1, see ``tables.role_queues``)."""
    exists = await conn.scalar(select(roles.c.name).where(roles.c.name == name))
    links = (
        await conn.execute(
            select(role_queues.c.queue, role_queues.c.position)
            .where(role_queues.c.role == name)
            .order_by(*_ORDER[1:])
        )
    ).all()
    if exists is None:
        # The default role exists implicitly and consumes every queue until given a list.
        return (Role(name=DEFAULT_ROLE) if name == DEFAULT_ROLE else None), False
    ordered = bool(links) and all(position > 0 for _queue, position in links)
    return Role(name=name, queues=[queue for queue, _position in links]), ordered


async def _check_queues_exist(conn: AsyncConnection, names: list[str]) -> None:
    known = set((await conn.execute(select(queues.c.name))).scalars().all())
    missing = sorted(set(names) - known)
    if missing:
        raise QueueNotFoundError(f"queues do not exist: {', '.join(missing)}")


def _role_links(role: Role) -> list[dict[str, Any]]:
    """The rows of ``role``'s queue list: each queue once, where it first comes, numbered from 1."""
    return [
        {"role": role.name, "queue": q, "position": i}
        for i, q in enumerate(dict.fromkeys(role.queues), start=1)
    ]


def _queue_values(config: QueueConfig) -> dict[str, Any]:
    return {
        "max_concurrent": config.max_concurrent,
        "rate_numerator": config.rate_numerator,
        "rate_denominator": config.rate_denominator,
        "rate_period": config.rate_period.value,
    }


def _queue_from_row(row: Any) -> QueueConfig:
    return QueueConfig(
        name=row["name"],
        max_concurrent=row["max_concurrent"],
        rate_numerator=row["rate_numerator"],
        rate_denominator=row["rate_denominator"] or 1,
        rate_period=RatePeriod(row["rate_period"] or "second"),
    )


def _recurring_values(entry: RecurringEntry) -> dict[str, Any]:
    return {
        "task_name": entry.task_name,
        "task_version": entry.task_version,
        "params": json.dumps(entry.params, separators=(",", ":")),
        "queue": entry.queue,
        "priority": entry.priority,
        "description": entry.description,
        "cron": entry.cron,
        "timezone": entry.timezone,
        "every_seconds": entry.every_seconds,
        "catch_up": entry.catch_up,
        "paused": entry.paused,
        "static": entry.static,
        "created_at_ms": entry.created_at_ms,
        "last_fire_ms": entry.last_fire_ms,
        "workflow": json.dumps(entry.workflow, separators=(",", ":")) if entry.workflow is not None else None,
        "skip_if_running": entry.skip_if_running,
    }


def _recurring_from_row(row: Any) -> RecurringEntry:
    return RecurringEntry(
        key=row["key"],
        task_name=row["task_name"],
        task_version=row["task_version"],
        params=json.loads(row["params"]),
        queue=row["queue"],
        priority=row["priority"],
        description=row["description"],
        cron=row["cron"],
        timezone=row["timezone"],
        every_seconds=row["every_seconds"],
        catch_up=bool(row["catch_up"]),
        paused=bool(row["paused"]),
        static=bool(row["static"]),
        created_at_ms=row["created_at_ms"],
        last_fire_ms=row["last_fire_ms"],
        workflow=json.loads(row["workflow"]) if row["workflow"] is not None else None,
        skip_if_running=bool(row["skip_if_running"]),
    )
