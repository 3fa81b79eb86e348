import pytest

from jobbers.config_store import ConfigStore
from jobbers.errors import QueueNotFoundError
from jobbers.models.queue_config import QueueConfig
from jobbers.models.role import Role, queues_for_role


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
    assert (await store.get_role("heavy")) == Role(name="heavy", queues=["default", "exports"])
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
