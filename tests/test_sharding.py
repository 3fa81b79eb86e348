"""Sharding by queue on one Redis: each queue's keys in its own hash tag, tasks found by id through
the locator, listings merged over queues with exact cursors, claims shared out over queues, the
REDIS_URL forms, and the upgrade of data written in the old shared layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import TaskStatus
from jobbers.state.connection import parse_redis_url
from jobbers.state.keys import Keys
from jobbers.state.queries import TaskFilter, TaskQueries
from jobbers.state.store import NewTask, Outcome, TaskStore
from jobbers.state.upgrade import old_layout_present, upgrade_layout
from tests.helpers import assert_exactly_one_terminal_state
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
QUEUES = [f"q{i}" for i in range(6)]


async def test_each_queue_has_its_own_slot_and_a_task_is_found_by_id_alone(store: TaskStore) -> None:
    ids = {q: (await store.submit(NewTask(name="t", queue=q))).id for q in QUEUES}
    slots = {q: key_slot(store.keys.space(q).task(ids[q]).encode()) for q in QUEUES}

    assert len(set(slots.values())) == len(QUEUES)  # six queues, six slots
    for q, task_id in ids.items():
        assert key_slot(store.keys.queue(q).ready.encode()) == slots[q]  # a task's record sits with its queue
        assert await store.redis.exists(store.keys.space(q).task(task_id))
    found = await store.get_tasks(list(ids.values()))
    assert [t.queue for t in found] == QUEUES and await store.locate(list(ids.values())) == {
        v: k for k, v in ids.items()
    }
    # Cancel and task_refs reach each task by id in its own queue; an unknown id is not found.
    outcomes = await store.cancel([ids["q1"], "01ARZ3NDEKTSV4RRFFQ69G5FAV", ids["q4"]])
    assert [o.outcome for o in outcomes] == ["cancelled", "not_found", "cancelled"]
    assert (await store.task_refs([ids["q2"]]))[ids["q2"]].queue == "q2"


async def test_an_id_chosen_again_for_another_queue_names_the_first_task(store: TaskStore) -> None:
    first = await store.submit(NewTask(name="t", queue="a", id="01ARZ3NDEKTSV4RRFFQ69G5FAV"))
    again = await store.submit(NewTask(name="t", queue="b", id="01ARZ3NDEKTSV4RRFFQ69G5FAV"))

    assert first.created and not again.created and again.id == first.id
    assert await store.queue_depth("a") == 1 and await store.queue_depth("b") == 0


async def test_listings_merge_queues_in_order_and_cursors_never_skip_or_repeat(store: TaskStore) -> None:
    ids = [o.id for o in await store.submit_many([NewTask(name="t", queue=QUEUES[i % 6]) for i in range(23)])]
    queries = TaskQueries(store)
    seen: list[tuple[int, str]] = []
    cursor = None
    added = False
    while True:
        page = await queries.list_by_status([TaskStatus.SUBMITTED], TaskFilter(), 4, cursor)
        seen += [(item.score_ms, item.task.id) for item in page.items]
        if not added:  # tasks submitted while paging come after the cursor: listed once, at the end
            ids += [o.id for o in await store.submit_many([NewTask(name="t", queue="q3") for _ in range(2)])]
            added = True
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    # Every task once, in (time entered the status, id) order over all six queues.
    assert sorted(seen) == seen and sorted(i for _, i in seen) == sorted(ids) and page.total == 25
    only_q3 = await queries.list_by_status([TaskStatus.SUBMITTED], TaskFilter(queue="q3"), 100, None)
    assert [i.task.id for i in only_q3.items] == [i for i in ids if (await store.get_task(i)).queue == "q3"]  # type: ignore[union-attr]
    assert await queries.count_in_status(TaskStatus.SUBMITTED) == 25


async def test_a_claim_over_queues_takes_at_most_its_count_sharing_it_out_in_order(store: TaskStore) -> None:
    await store.submit_many([NewTask(name="t", queue="a") for _ in range(5)])
    await store.submit_many([NewTask(name="t", queue="b") for _ in range(1)])
    await store.submit_many([NewTask(name="t", queue="c") for _ in range(5)])
    queues = [QueueConfig(name=q) for q in ("a", "b", "c")]

    first = await store.claim("w", 30, 7, queues)  # shares 3/2/2; b's unused one goes to a, then c
    rest = await store.claim("w", 30, 20, queues)

    by_queue = [t.queue for t in first.tasks]
    assert len(first.tasks) == 7 and by_queue.count("b") == 1 and len(rest.tasks) == 4
    await store.finish([Outcome(t.id, t.token, "completed") for t in first.tasks + rest.tasks])
    await assert_exactly_one_terminal_state(store, [t.id for t in first.tasks + rest.tasks])


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://localhost:6379/0", "single"),
        ("rediss://:pw@cache.internal:6380", "single"),
        ("unix:///run/redis.sock", "single"),
        ("redis+sentinel://:pw@s1:26379,s2:26380/mymaster/2?sentinel_password=spw", "sentinel"),
        ("redis+cluster://n1:7000,n2:7001", "cluster"),
    ],
)
def test_redis_url_forms(url: str, kind: str) -> None:
    target = parse_redis_url(url)
    assert target.kind == kind
    if kind == "sentinel":
        assert (
            target.hosts == (("s1", 26379), ("s2", 26380)) and target.service == "mymaster" and target.db == 2
        )
        assert target.password == "pw" and target.sentinel_options == {"sentinel_password": "spw"}
    assert parse_redis_url("redis://n1:7000", cluster=True).kind == "cluster"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+sentinel://s1:26379", "names its service"),
        ("redis+sentinel://s1:notaport/m", "is not host:port"),
        ("redis+cluster://n1:7000/3", "only database 0"),
        ("redis+sentinel://s1/m?color=red", "unknown option 'color'"),
        ("http://localhost", "unknown scheme http://"),
    ],
)
def test_a_malformed_redis_url_is_refused_with_its_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_redis_url(url)


class _OldKeys(Keys):
    """The layout before per-queue spaces: every queue's keys under the one prefix."""

    def space_prefix(self, queue: str) -> str:
        return self.prefix


async def _write_old_layout(redis: Redis, prefix: str) -> dict[str, list[str]]:
    old = TaskStore(redis, prefix)
    old.keys = _OldKeys(prefix)
    ready = [
        o.id
        for o in await old.submit_many(
            [NewTask(name="t", queue=q, idempotency_key=f"k-{q}") for q in ("a", "b")]
        )
    ]
    await old.submit(NewTask(name="t", queue="c"))
    running = [t.id for t in (await old.claim("w", 30, 1, [QueueConfig(name="c")])).tasks]
    failed = (await old.submit(NewTask(name="t", queue="d"))).id
    (held,) = (await old.claim("w", 30, 1, [QueueConfig(name="d")])).tasks
    await old.finish(
        [Outcome(held.id, held.token, TaskStatus.FAILED, error_type="E", error_message="x", dead_letter=True)]
    )
    await redis.delete(old.keys.locator)  # the old layout had none
    await redis.sadd(prefix + "running:c", *running)  # nor a started index alone: a running set
    # nor an event log (it came with the per-queue spaces)
    await redis.delete(old.keys.space("a").audit)
    return {"ready": ready, "running": running, "failed": [failed]}


async def test_the_upgrade_moves_old_shared_layout_data_into_queue_spaces(
    redis: Redis, key_prefix: str
) -> None:
    written = await _write_old_layout(redis, key_prefix)
    store = TaskStore(redis, key_prefix)
    assert await old_layout_present(store) and await store.get_task(written["ready"][0]) is None

    leftover = store.keys.space_prefix("c") + "running:c"  # a running set of a per-queue space
    await redis.sadd(leftover, written["running"][0])
    report = await upgrade_layout(store)
    again = await upgrade_layout(store)
    assert not await redis.exists(leftover)

    assert report.tasks == 4 and not again.moved_anything and not await old_layout_present(store)
    assert [t.status for t in await store.get_tasks(written["ready"])] == [TaskStatus.SUBMITTED] * 2
    assert (await store.get_task(written["running"][0])).status is TaskStatus.STARTED  # type: ignore[union-attr]
    dead = await TaskQueries(store).list_dead_letters(TaskFilter(), 10, None)
    assert [i.task.id for i in dead.items] == written["failed"]
    # An Idempotency-Key recorded before still names its task, in that task's queue.
    replay = await store.submit(NewTask(name="t", queue="a", idempotency_key="k-a"))
    assert not replay.created and replay.id == written["ready"][0]
    claimed = await store.claim("w2", 30, 10, [QueueConfig(name=q) for q in ("a", "b", "c", "d")])
    assert sorted(t.id for t in claimed.tasks) == sorted(written["ready"])
    # Nothing of the old layout is left under the prefix but the global keys.
    left = {k.decode() async for k in redis.scan_iter(match=key_prefix + "*")}
    assert left <= {store.keys.queues, store.keys.locator, store.keys.workers}, left


async def test_jobbers_migrate_redis_upgrades_and_says_what_it_moved(
    fresh_redis_server: RedisServer, tmp_path: Path
) -> None:
    redis = Redis.from_url(fresh_redis_server.url)
    try:
        await _write_old_layout(redis, "{jobbers}:")
        env = {"REDIS_URL": fresh_redis_server.url, "SQL_PATH": f"sqlite+aiosqlite:///{tmp_path / 'j.db'}"}
        command = [str(Path(sys.executable).parent / "jobbers_migrate"), "--redis"]
        first = subprocess.run(
            command, env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60
        )
        second = subprocess.run(
            command, env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60
        )
    finally:
        await redis.aclose()

    assert first.returncode == 0 and "upgraded: 4 tasks" in first.stdout, first.stderr
    assert second.returncode == 0 and "already in per-queue key spaces" in second.stdout


async def test_a_bulk_request_key_that_conflicts_writes_no_queue(store: TaskStore) -> None:
    from jobbers.errors import IdempotencyConflictError
    from jobbers.state.store import RequestKey

    tasks = [NewTask(name="t", queue=q) for q in ("a", "b", "c")]
    first = await store.submit_many(tasks, request=RequestKey("bulk-1", "f1"))
    with pytest.raises(IdempotencyConflictError):
        await store.submit_many([NewTask(name="t", queue=q) for q in ("a", "b", "c")], request=RequestKey("bulk-1", "f2"))

    assert len(first) == 3 and [await store.queue_depth(q) for q in ("a", "b", "c")] == [1, 1, 1]
