"""The platform on a Redis Cluster (3 masters, each with a replica) and on Sentinel (a master, a
replica and 3 Sentinels), started on loopback ports: the README's HTTP story and the fault tests
run on each, a queue's keys land on its own shard, and killing a master under load loses no task
submitted after the failover. Slow (real topologies): ``python -m pytest -m topology``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.crc import key_slot
from redis.exceptions import RedisError

from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import TaskStatus
from jobbers.state.connection import connect
from jobbers.state.keys import Keys
from jobbers.state.reconnect import is_out_of_memory
from jobbers.state.records import LeaseRenewal
from jobbers.state.store import NewTask, TaskStore, new_task_id
from jobbers.state.transitions import TransitionFeed
from jobbers.state.waits import TaskWaits
from tests import test_faults, test_http_story
from tests.e2e import E2E, make_e2e, wait_until
from tests.helpers import assert_exactly_one_terminal_state
from tests.topology import Cluster, SentinelGroup, wait_for

pytestmark = pytest.mark.topology

TOPOLOGIES = ("cluster", "sentinel")


@pytest.fixture(params=TOPOLOGIES)
def topology(request: pytest.FixtureRequest) -> Cluster | SentinelGroup:
    return request.getfixturevalue("cluster" if request.param == "cluster" else "sentinel_group")  # type: ignore[no-any-return]


@pytest.fixture
async def e2e(topology: Cluster | SentinelGroup, key_prefix: str, tmp_path: Path) -> AsyncIterator[E2E]:
    """The e2e platform of the other tests, on a topology (REDIS_URL is its redis+cluster:// or
    redis+sentinel:// URL for every process)."""
    async for env in make_e2e(topology, key_prefix, tmp_path):
        yield env


# The README's story over HTTP and the fault tests, unchanged, on each topology (the e2e fixture
# above replaces the one-Redis fixture for them). Restarting the one Redis is replaced by the
# failover tests below.
http = test_http_story.http
test_the_readme_story_over_http = test_http_story.test_the_readme_story_over_http
test_sigkill_with_100_tasks_in_flight_loses_nothing = (
    test_faults.test_sigkill_with_100_tasks_in_flight_loses_nothing
)
test_crash_inside_the_claim_window_is_recovered = test_faults.test_crash_inside_the_claim_window_is_recovered
test_a_frozen_workers_late_completion_is_rejected = (
    test_faults.test_a_frozen_workers_late_completion_is_rejected
)
test_sigterm_applies_each_on_shutdown_policy = test_faults.test_sigterm_applies_each_on_shutdown_policy
test_two_schedulers_never_promote_a_task_twice = test_faults.test_two_schedulers_never_promote_a_task_twice
test_two_cleaners_at_once_recover_each_task_once = (
    test_faults.test_two_cleaners_at_once_recover_each_task_once
)
test_cancel_racing_claim_always_ends_cancelled = test_faults.test_cancel_racing_claim_always_ends_cancelled
test_a_task_that_kills_its_worker_ends_stalled_after_its_stall_budget = (
    test_faults.test_a_task_that_kills_its_worker_ends_stalled_after_its_stall_budget
)
test_a_scheduler_killed_mid_promotion_loses_nothing = (
    test_faults.test_a_scheduler_killed_mid_promotion_loses_nothing
)


def _queues_on_every_master(cluster: Cluster, prefix: str, at_least: int = 6) -> list[str]:
    """Queue names (q0, q1 ...) until every master serves at least two of them."""
    keys = Keys(prefix)
    by_master: dict[int, list[str]] = {n.port: [] for n in cluster.masters()}
    i = 0
    while i < at_least or min(len(v) for v in by_master.values()) < 2:
        name = f"q{i}"
        by_master[cluster.master_of(keys.queue(name).ready).port].append(name)
        i += 1
    return [q for names in by_master.values() for q in names]


@pytest.mark.parametrize("topology", ["cluster"], indirect=True)
async def test_the_keys_of_six_queues_land_on_all_three_masters(
    e2e: E2E, cluster: Cluster, key_prefix: str
) -> None:
    queues = _queues_on_every_master(cluster, key_prefix)
    for queue in queues:
        await e2e.config.create_queue(QueueConfig(name=queue))
    e2e.platform.worker()  # the default role consumes every queue
    ids = [o.id for o in await e2e.store.submit_many([NewTask(name="noop", queue=q) for q in queues])]
    tasks = await e2e.wait_terminal(ids)

    assert {t.status for t in tasks} == {TaskStatus.COMPLETED}
    keys = Keys(key_prefix)
    space_glob = keys.space_glob
    holders: dict[int, set[str]] = {}
    for master in cluster.masters():
        found = {k.decode() for k in master.client().scan_iter(match=space_glob, count=1000)}
        held = {q for q in [*queues, "default"] if any(k.startswith(keys.space_prefix(q)) for k in found)}
        # A master holds only whole queues: each of its queue's keys (and task records) shares one slot.
        assert {key_slot(k.encode()) for k in found} == {
            key_slot(keys.space_prefix(q).encode()) for q in held
        }
        holders[master.port] = held - {"default"}
    assert len(holders) == 3 and all(len(h) >= 2 for h in holders.values()), holders
    assert set().union(*holders.values()) == set(queues)  # every queue's keys, each on exactly one master
    assert sum(len(h) for h in holders.values()) == len(queues)



async def test_a_task_whose_locator_entry_a_failover_lost_is_found_in_its_queue_and_located_again(
    cluster: Cluster, key_prefix: str
) -> None:
    """The locator lives on another shard than most tasks: losing its entry (a failover of that
    shard) must not make a task that still exists, and runs, unfindable by its id."""
    queue = _queues_on_every_master(cluster, key_prefix)[0]
    submitter, reader = (TaskStore(connect(cluster.url), key_prefix) for _ in range(2))
    try:
        task_id = (await submitter.submit(NewTask(name="noop", queue=queue))).id
        await reader.redis.hdel(reader.keys.locator, task_id)  # as the failover that lost its write
        (task,) = await reader.get_tasks([task_id])
        assert (task.id, task.queue, task.status) == (task_id, queue, TaskStatus.SUBMITTED)
        assert await reader.redis.hget(reader.keys.locator, task_id) == queue.encode()  # located again
        assert await reader.get_tasks([new_task_id()]) == []  # an id no queue holds is still unknown
    finally:
        await submitter.close()
        await reader.close()


@pytest.mark.parametrize("topology", ["cluster"], indirect=True)
async def test_a_cluster_master_out_of_memory_is_named_and_its_leases_are_still_renewed(
    e2e: E2E, cluster: Cluster, key_prefix: str
) -> None:
    """Issue 9 §4 on a cluster: the master holding ``default`` goes past its ``maxmemory``. The
    readiness check names that master; a lease of ``default`` is still renewed there, while a
    claim and lease recovery are refused."""
    default = [QueueConfig(name="default")]
    ids = [o.id for o in await e2e.store.submit_many([NewTask(name="noop"), NewTask(name="noop")])]
    (claimed,) = (await e2e.store.claim("w", 30, 1, default)).tasks
    node = cluster.master_of(Keys(key_prefix).queue("default").ready)
    master = node.client()
    used = int(master.info("memory")["used_memory"])
    master.config_set("maxmemory", str(used - 256_000))  # noeviction: over the limit at once
    try:
        reason = await e2e.store.out_of_memory()
        assert reason is not None and reason.startswith(f"out of memory on 127.0.0.1:{node.port}: "), reason
        lost, _ = await e2e.store.renew_leases(30, [LeaseRenewal(claimed.id, claimed.token)])
        assert lost == []
        for refused in (e2e.store.claim("w", 30, 1, default), e2e.store.recover_expired_leases()):
            with pytest.raises(RedisError) as error:
                await refused
            assert is_out_of_memory(error.value), error.value
    finally:
        master.config_set("maxmemory", "0")
    assert await e2e.store.out_of_memory() is None
    assert [t.status for t in await e2e.store.get_tasks(ids)] == [TaskStatus.STARTED, TaskStatus.SUBMITTED]


def _safely(check: object) -> bool:
    try:
        return bool(check())  # type: ignore[operator]
    except Exception:
        return False


async def _submit_through_failover(
    e2e: E2E, queue: str, kill: object, promoted: object, seconds_after: float = 2.0
) -> tuple[list[str], list[str], float]:
    """Submit one task at a time to ``queue`` while ``kill()`` takes its master down, until
    ``seconds_after`` past ``promoted()``; returns (ids acknowledged before the promotion was seen,
    ids whose submit began after it, how long the promotion took)."""
    before: list[str] = []
    after: list[str] = []
    promoted_at: float | None = None
    killed_at = 0.0
    started = time.monotonic()
    while promoted_at is None or time.monotonic() < promoted_at + seconds_after:
        began = time.monotonic()
        if not killed_at and began - started > 1.0:
            kill()  # type: ignore[operator]
            killed_at = time.monotonic()
        if killed_at and promoted_at is None and _safely(promoted):
            promoted_at = time.monotonic()
        try:
            outcome = await e2e.store.submit(NewTask(name="noop", queue=queue))
        except Exception:
            await asyncio.sleep(0.05)
            continue
        (after if promoted_at is not None and began >= promoted_at else before).append(outcome.id)
        await asyncio.sleep(0.01)
        if time.monotonic() - started > 60:
            raise AssertionError("no promotion within a minute")
    assert promoted_at is not None
    return before, after, promoted_at - killed_at


async def test_a_sentinel_failover_under_load_loses_no_task_submitted_after_it(
    key_prefix: str, tmp_path: Path
) -> None:
    group = SentinelGroup()  # its own: this test kills the master
    group.start()
    try:
        async for e2e in make_e2e(group, key_prefix, tmp_path):
            e2e.platform.worker()
            e2e.platform.scheduler()
            old = group.master.port
            before, after, took = await _submit_through_failover(
                e2e, "default", group.master.kill, lambda: group.current_master().port != old  # noqa: B023 - used within this iteration
            )
            tasks = await e2e.wait_terminal(after, seconds=60)

            assert len(after) >= 20 and {t.status for t in tasks} == {TaskStatus.COMPLETED}, took
            await assert_exactly_one_terminal_state(e2e.store, after)
            # Of the tasks acknowledged before, any still there ends once (asynchronous replication
            # may have lost the last ones; docs/operations.md says so).
            survivors = [t.id for t in await e2e.store.get_tasks(before)]
            await e2e.wait_terminal(survivors, seconds=60)
    finally:
        group.stop()


async def _queue_recorded(e2e: E2E, queue: str) -> bool:
    try:
        return queue in await e2e.store.known_queues()
    except Exception:
        return False


async def test_a_cluster_master_failover_under_load_loses_no_task_submitted_after_it(
    key_prefix: str, tmp_path: Path
) -> None:
    cluster = Cluster()  # its own: this test kills a master
    cluster.start()
    try:
        async for e2e in make_e2e(cluster, key_prefix, tmp_path):
            keys = Keys(key_prefix)
            victim = cluster.master_of(keys.queue("default").ready)
            e2e.platform.worker()
            e2e.platform.scheduler()
            before, after, took = await _submit_through_failover(
                e2e,
                "default",
                victim.kill,
                lambda: cluster.master_of(keys.queue("default").ready).port != victim.port,  # noqa: B023
            )
            tasks = await e2e.wait_terminal(after, seconds=60)

            assert len(after) >= 20 and {t.status for t in tasks} == {TaskStatus.COMPLETED}, took
            # The queue set lives on one shard: the failover may have lost its entry (written by
            # the first submit, before the promotion), and lease recovery and the listings find a
            # queue's tasks through it. Submitters and the scheduler record their queues again.
            await wait_until(lambda: _queue_recorded(e2e, "default"), 10)  # noqa: B023
            await assert_exactly_one_terminal_state(e2e.store, after)
            survivors = [t.id for t in await e2e.store.get_tasks(before)]
            await e2e.wait_terminal(survivors, seconds=60)
            wait_for(cluster.healthy, "the cluster did not settle after the failover")
    finally:
        cluster.stop()


async def test_a_new_clients_first_act_may_be_to_subscribe(
    topology: Cluster | SentinelGroup, key_prefix: str
) -> None:
    """A cluster client learns its slots at its first command, and its pub/sub picks a node by
    slot: a listener started first (client.wait, the transition feed, a worker's wake-ups) must
    still subscribe, and hear what another client's script publishes."""
    store = TaskStore(connect(topology.url), key_prefix)
    other = TaskStore(connect(topology.url), key_prefix)
    task = NewTask(name="noop")
    try:
        async with TransitionFeed(store) as feed:
            await asyncio.wait_for(feed.subscribed.wait(), 10)
            await other.submit(task)
            batch = await asyncio.wait_for(feed.next_batch(), 5)
    finally:
        await store.close()
        await other.close()
    assert [(t.task_id, t.new) for t in batch] == [(task.id, TaskStatus.SUBMITTED)]


async def test_a_listener_cancelled_while_its_connection_drops_or_comes_back_stops(
    topology: Cluster | SentinelGroup, key_prefix: str
) -> None:
    """A cancellation that lands while the listener's connection is being torn down or set up
    again (its store closed under it, as at a process's or test's end) must end the listener:
    redis-py can turn it into a connection error or drop it, and a listener that retried on would
    keep the event loop's shutdown waiting for ever."""
    still_running = []
    for i in range(48):
        store = TaskStore(connect(topology.url), key_prefix)
        waits = TaskWaits(store)
        await waits._subscribe()
        listening = waits._task
        assert listening is not None
        await store.close()
        # around the back-off's first delay (50 ms): the teardown, then the reconnect
        await asyncio.sleep((i % 24) * 0.003)
        listening.cancel()
        done, _ = await asyncio.wait({listening}, timeout=3)
        if not done:
            still_running.append(i)
    assert still_running == []
