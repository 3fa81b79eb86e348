"""The config store: queues, roles and the order of a role's queues, and the migration that
brings that order to a database of the previous revision (SQLite and PostgreSQL)."""

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from jobbers.config_store import ConfigStore, schema
from jobbers.errors import QueueNotFoundError
from jobbers.models.queue_config import QueueConfig
from jobbers.models.role import Role, queues_for_role
from tests.test_manager_config import config_url

__all__ = ["config_url"]  # fixtures used here


async def test_fresh_install_has_default_queue_and_default_role_consumes_every_queue(sqlite_url: str) -> None:
    store = ConfigStore(sqlite_url)
    await store.migrate()
    await store.migrate()  # idempotent
    assert [q.name for q in await store.list_queues()] == ["default"]
    await store.save_queue(QueueConfig(name="reports", max_concurrent=5, rate_numerator=100, rate_period="hour"))
    assert [q.name for q in await store.queues_for_role("default")] == ["default", "reports"]
    assert await store.queues_for_role("nobody") == []
    await store.close()


async def test_roles_assign_queues_and_refuse_unknown_ones(sqlite_url: str) -> None:
    store = ConfigStore(sqlite_url)
    await store.migrate()
    await store.save_queue(QueueConfig(name="exports"))
    assert await store.save_role(Role(name="heavy", queues=["exports"]))
    assert not await store.save_role(Role(name="heavy", queues=["exports", "default"]))  # replaced
    assert (await store.get_role("heavy")) == Role(name="heavy", queues=["exports", "default"])
    with pytest.raises(QueueNotFoundError):
        await store.save_role(Role(name="heavy", queues=["nope"]))
    await store.delete_queue("exports")
    assert (await store.get_role("heavy")) == Role(name="heavy", queues=["default"])
    assert await store.delete_role("heavy") and await store.get_role("heavy") is None
    await store.close()


async def test_save_queue_updates_limits(sqlite_url: str) -> None:
    store = ConfigStore(sqlite_url)
    await store.migrate()
    assert await store.save_queue(QueueConfig(name="q", max_concurrent=2))
    assert not await store.save_queue(QueueConfig(name="q", max_concurrent=9))
    q = await store.get_queue("q")
    assert q is not None and q.max_concurrent == 9
    await store.close()


def test_explicit_default_role_list_replaces_every_queue() -> None:
    assert queues_for_role(Role(name="default", queues=["a"]), ["a", "b"]) == ["a"]
    assert queues_for_role(Role(name="default"), ["b", "a"]) == ["a", "b"]
    assert queues_for_role(None, ["a"]) == []


async def test_a_role_keeps_the_order_of_its_queues_and_its_workers_drain_them_so(sqlite_url: str) -> None:
    store = ConfigStore(sqlite_url)
    await store.migrate()
    for name in ("urgent", "bulk", "reports"):
        await store.save_queue(QueueConfig(name=name))
    await store.save_role(Role(name="ops", queues=["urgent", "reports", "urgent", "bulk"]))
    await store.create_role(Role(name="batch", queues=["reports", "bulk", "default"]))
    await store.delete_queue("reports")

    ops, ops_in_order = await store.role_queues("ops")
    default, default_in_order = await store.role_queues("default")
    roles = {r.name: r.queues for r in await store.list_roles()}
    await store.save_role(Role(name="default", queues=["bulk", "urgent"]))  # an explicit list orders it
    explicit, explicit_in_order = await store.role_queues("default")
    await store.close()

    assert ([q.name for q in ops], ops_in_order) == (["urgent", "bulk"], True)  # a repeat counts once
    assert roles == {"ops": ["urgent", "bulk"], "batch": ["bulk", "default"]}
    # The default role with no list consumes every queue, rotating among them.
    assert ([q.name for q in default], default_in_order) == (["bulk", "default", "urgent"], False)
    assert ([q.name for q in explicit], explicit_in_order) == (["bulk", "urgent"], True)


async def test_a_database_of_revision_0002_gets_the_role_order_and_keeps_its_roles(config_url: str) -> None:
    engine = create_async_engine(config_url)
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: schema.upgrade(c, "0002"))
        for queue in ("default", "urgent", "bulk"):
            await conn.execute(text("INSERT INTO jobbers_queues (name, rate_denominator, rate_period) "
                                    f"VALUES ('{queue}', 1, 'second')"))  # fmt: skip
        await conn.execute(text("INSERT INTO jobbers_roles (name) VALUES ('ops')"))
        for queue in ("urgent", "bulk"):
            await conn.execute(text(f"INSERT INTO jobbers_role_queues (role, queue) VALUES ('ops', '{queue}')"))
    await engine.dispose()

    store = ConfigStore(config_url)
    try:
        await store.migrate()
        async with store.engine.connect() as conn:
            revision = await conn.run_sync(schema.current_revision)
            columns = await conn.run_sync(lambda c: inspect(c).get_columns("jobbers_role_queues"))
        migrated, migrated_in_order = await store.role_queues("ops")
        await store.save_role(Role(name="ops", queues=["urgent", "bulk"]))
        saved, saved_in_order = await store.role_queues("ops")
    finally:
        await store.close()

    assert revision == schema.HEAD_REVISION and "position" in {c["name"] for c in columns}
    # No order was recorded before: the role keeps its queues (by name) and its workers keep
    # rotating until the role is saved again, with the order it is given then.
    assert ([q.name for q in migrated], migrated_in_order) == (["bulk", "urgent"], False)
    assert ([q.name for q in saved], saved_in_order) == (["urgent", "bulk"], True)
