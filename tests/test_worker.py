"""The worker in-process against real Redis and SQLite, with short leases and intervals."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from jobbers.client import JobbersClient
from jobbers.config_store import ConfigStore
from jobbers.context import task as current
from jobbers.models.queue_config import QueueConfig
from jobbers.models.role import Role
from jobbers.models.task import TaskStatus
from jobbers.models.task_config import BackoffStrategy, DeadLetterPolicy
from jobbers.registry import register_task
from jobbers.scheduler import Scheduler
from jobbers.settings import Settings
from jobbers.state.stats import PlatformStats, WorkerRecord
from jobbers.state.store import NewTask, TaskStore
from jobbers.worker import Worker
from tests.redis_server import RedisServer


@pytest.fixture
async def settings(redis_server: RedisServer, key_prefix: str, sqlite_url: str) -> Settings:
    return Settings(redis_url=redis_server.url, redis_key_prefix=key_prefix, sql_path=sqlite_url,
                    worker_ttl=0, worker_lease_seconds=0.6, worker_refresh_interval=0.1,
                    worker_shutdown_grace=2, scheduler_poll_interval=0.1, scheduler_batch_size=50)


@pytest.fixture
async def config(settings: Settings) -> AsyncIterator[ConfigStore]:
    store = ConfigStore(settings.sql_path)
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture
async def client(store: TaskStore, config: ConfigStore) -> AsyncIterator[JobbersClient]:
    client = JobbersClient(store, config, queue_cache_seconds=0)
    yield client
    await client.waits.close()  # the store and config fixtures close the rest


Runner = Callable[..., Awaitable[Worker]]


@pytest.fixture
async def run_worker(settings: Settings, store: TaskStore, config: ConfigStore) -> AsyncIterator[Runner]:
    """Start in-process workers (and optionally a scheduler); stop them all at the end."""
    started: list[tuple[Any, asyncio.Task[None]]] = []

    async def start(scheduler: bool = False, **overrides: Any) -> Worker:
        worker = Worker(settings.model_copy(update=overrides), store, config)
        started.append((worker, asyncio.create_task(worker.run(handle_signals=False))))
        if scheduler:
            sched = Scheduler(settings, store, config)
            started.append((sched, asyncio.create_task(sched.run())))
        await asyncio.sleep(0.05)
        return worker

    yield start
    for obj, t in started:
        obj.request_shutdown()
    await asyncio.wait_for(asyncio.gather(*(t for _, t in started), return_exceptions=True), 10)


async def test_worker_runs_a_task_and_stores_its_result(run_worker: Runner, client: JobbersClient) -> None:
    @register_task(name="add")
    async def add(x: int, y: int) -> int:
        return x + y

    await run_worker()
    sub = await client.submit("add", {"x": 2, "y": 3})
    done = await client.wait(sub.id, 5)
    assert (done.status, done.result, done.retry_attempt) == (TaskStatus.COMPLETED, 5, 0)
    assert done.started_at is not None and done.completed_at is not None and done.worker_id


async def test_expected_exception_retries_with_backoff_then_dead_letters(
    run_worker: Runner, client: JobbersClient
) -> None:
    calls: list[float] = []

    @register_task(name="flaky", max_retries=3, retry_delay=0.1, backoff_strategy=BackoffStrategy.LINEAR,
                   expected_exceptions=(ConnectionError,), dead_letter_policy=DeadLetterPolicy.SAVE)
    async def flaky() -> None:
        calls.append(time.monotonic())
        raise ConnectionError("upstream timed out")

    await run_worker(scheduler=True)
    sub = await client.submit("flaky")
    done = await client.wait(sub.id, 10)
    assert done.status is TaskStatus.FAILED and done.retry_attempt == 3 and done.dead_lettered
    assert len(calls) == 4  # max_retries=3 allows 4 executions
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.3  # linear backoff
    assert [e.attempt for e in done.errors] == [0, 1, 2, 3]
    assert {e.exception_type for e in done.errors} == {"ConnectionError"}
    assert done.error == "ConnectionError: upstream timed out"


async def test_unexpected_exception_fails_at_once(run_worker: Runner, client: JobbersClient) -> None:
    @register_task(name="buggy", max_retries=5, expected_exceptions=(ConnectionError,))
    async def buggy() -> None:
        raise KeyError("missing")

    await run_worker()
    done = await client.wait((await client.submit("buggy")).id, 5)
    assert done.status is TaskStatus.FAILED and done.retry_attempt == 0 and not done.dead_lettered
    assert done.errors[0].exception_type == "KeyError"


async def test_timeout_retries_then_fails(run_worker: Runner, client: JobbersClient) -> None:
    @register_task(name="slow", timeout=0.05, max_retries=1, retry_delay=0, backoff_strategy="constant")
    async def slow() -> None:
        await asyncio.sleep(5)

    await run_worker(scheduler=True)
    done = await client.wait((await client.submit("slow")).id, 5)
    assert done.status is TaskStatus.FAILED and done.retry_attempt == 1
    assert [e.exception_type for e in done.errors] == ["TimeoutError", "TimeoutError"]


async def test_unknown_task_is_dropped(run_worker: Runner, store: TaskStore, client: JobbersClient) -> None:
    await run_worker()
    sub = await client.submit("not_here", {}, version=7)
    done = await client.wait(sub.id, 5)
    assert done.status is TaskStatus.DROPPED and done.errors[0].exception_type == "UnknownTask"


async def test_cancel_interrupts_a_running_task_at_the_next_await(run_worker: Runner, client: JobbersClient) -> None:
    reached: list[str] = []

    @register_task(name="sleepy")
    async def sleepy() -> None:
        reached.append("start")
        await asyncio.sleep(30)
        reached.append("end")

    await run_worker()
    sub = await client.submit("sleepy")
    while not reached:
        await asyncio.sleep(0.01)
    t0 = time.monotonic()
    assert (await client.cancel(sub.id)).outcome == "requested"
    done = await client.wait(sub.id, 5)
    assert done.status is TaskStatus.CANCELLED and reached == ["start"]
    assert time.monotonic() - t0 < 1.0  # via pub/sub, not the lease-renewal fallback


async def test_heartbeat_reaches_redis_through_lease_renewal(run_worker: Runner, client: JobbersClient) -> None:
    @register_task(name="beating", max_heartbeat_interval=dt.timedelta(seconds=0.5))
    async def beating() -> str:
        for _ in range(8):
            await asyncio.sleep(0.1)
            current.heartbeat()
        return current.id

    await run_worker()
    sub = await client.submit("beating")
    await asyncio.sleep(0.5)
    running = await client.get(sub.id)
    assert running.status is TaskStatus.STARTED and running.last_heartbeat_at is not None
    done = await client.wait(sub.id, 5)
    assert done.status is TaskStatus.COMPLETED and done.result == sub.id


async def test_a_heartbeat_reaches_redis_within_a_second_whatever_the_lease(
    run_worker: Runner, client: JobbersClient
) -> None:
    @register_task(name="beat_once")
    async def beat_once() -> None:
        await asyncio.sleep(0.2)
        current.heartbeat()
        await asyncio.sleep(2.5)

    await run_worker(worker_lease_seconds=30.0)  # leases alone are renewed only every 10 s
    sub = await client.submit("beat_once")
    t0 = time.monotonic()
    while (await client.get(sub.id)).last_heartbeat_at is None:
        assert time.monotonic() - t0 < 2.0, "heartbeat not written within ~1 s"
        await asyncio.sleep(0.05)


async def test_concurrency_limit_of_the_worker_and_of_the_queue(
    run_worker: Runner, client: JobbersClient, config: ConfigStore
) -> None:
    active = 0
    peak = 0

    @register_task(name="busy")
    async def busy() -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1

    await config.save_queue(QueueConfig(name="limited", max_concurrent=2))
    await run_worker(worker_concurrent_tasks=4)
    await run_worker(worker_concurrent_tasks=4)
    ids = [(await client.submit("busy", queue="limited")).id for _ in range(12)]
    for task_id in ids:
        assert (await client.wait(task_id, 10)).status is TaskStatus.COMPLETED
    assert peak == 2  # global across both workers


async def test_role_and_queue_changes_reach_an_idle_worker_without_restart(
    run_worker: Runner, client: JobbersClient, config: ConfigStore
) -> None:
    @register_task(name="hello")
    async def hello() -> str:
        return "hi"

    await config.save_queue(QueueConfig(name="reports"))
    await config.save_role(Role(name="heavy", queues=["default"]))
    worker = await run_worker(worker_role="heavy")
    sub = await client.submit("hello", queue="reports")
    await asyncio.sleep(0.4)
    assert (await client.get(sub.id)).status is TaskStatus.SUBMITTED  # not in the role yet
    await config.save_role(Role(name="heavy", queues=["default", "reports"]))
    assert (await client.wait(sub.id, 5)).status is TaskStatus.COMPLETED
    assert [q.name for q in worker.queues] == ["default", "reports"]


async def _started_queue_order(
    run_worker: Runner, client: JobbersClient, role: str, per_queue: int = 6
) -> list[str]:
    """The queues of the tasks a worker of ``role`` starts (two slots), in the order it starts them,
    after ``per_queue`` tasks were queued in each of ``urgent`` and ``bulk`` before it started."""
    started: list[str] = []

    @register_task(name="note")
    async def note(queue: str) -> None:
        started.append(queue)
        await asyncio.sleep(0.01)

    ids = [(await client.submit("note", {"queue": q}, queue=q)).id for q in ("bulk", "urgent") * per_queue]
    await run_worker(worker_role=role, worker_concurrent_tasks=2)
    for task_id in ids:
        assert (await client.wait(task_id, 10)).status is TaskStatus.COMPLETED
    return started


async def test_a_role_drains_its_queues_in_its_order(
    run_worker: Runner, client: JobbersClient, config: ConfigStore
) -> None:
    await config.save_queue(QueueConfig(name="urgent"))
    await config.save_queue(QueueConfig(name="bulk"))
    await config.save_role(Role(name="ops", queues=["urgent", "bulk"]))

    started = await _started_queue_order(run_worker, client, "ops")

    # Every claim went to urgent while it had ready work; bulk only got what was left after it.
    assert started == ["urgent"] * 6 + ["bulk"] * 6


async def test_a_worker_of_the_default_role_rotates_among_every_queue(
    run_worker: Runner, client: JobbersClient, config: ConfigStore
) -> None:
    await config.save_queue(QueueConfig(name="urgent"))
    await config.save_queue(QueueConfig(name="bulk"))

    started = await _started_queue_order(run_worker, client, "default")

    # No order given: the first claim is shared between the queues, so neither waits for the other.
    assert sorted(started[:2]) == ["bulk", "urgent"] and sorted(started) == ["bulk"] * 6 + ["urgent"] * 6


async def test_an_ordered_claim_fills_from_the_first_queue_before_the_next(store: TaskStore) -> None:
    await store.submit_many([NewTask(name=f"{q}{i}", queue=q) for q in ("first", "second") for i in range(4)])
    first, second = QueueConfig(name="first", max_concurrent=3), QueueConfig(name="second")

    ordered = [t.name for t in (await store.claim("w", 30, 2, [first, second], in_order=True)).tasks]
    spilled = [t.name for t in (await store.claim("w", 30, 3, [first, second], in_order=True)).tasks]
    shared = [t.name for t in (await store.claim("w", 30, 2, [second, QueueConfig(name="first")])).tasks]

    assert ordered == ["first0", "first1"]  # the batch filled from the first queue alone
    # first may start only one more (max_concurrent=3): the rest of the batch comes from second.
    assert spilled == ["first2", "second0", "second1"]
    assert shared == ["second2", "first3"]  # without an order a claim shares the batch out


async def test_worker_exits_after_worker_ttl_tasks(
    settings: Settings, store: TaskStore, config: ConfigStore, client: JobbersClient
) -> None:
    @register_task(name="one")
    async def one() -> None: ...

    ids = [(await client.submit("one")).id for _ in range(5)]
    worker = Worker(settings.model_copy(update={"worker_ttl": 3}), store, config)
    await asyncio.wait_for(worker.run(handle_signals=False), 10)
    statuses = [t.status for t in await store.get_tasks(ids)]
    assert statuses.count(TaskStatus.COMPLETED) == 3 and statuses.count(TaskStatus.SUBMITTED) == 2


async def test_idle_worker_picks_up_new_work_within_milliseconds(run_worker: Runner, client: JobbersClient) -> None:
    @register_task(name="quick")
    async def quick() -> None: ...

    await run_worker()
    await asyncio.sleep(0.3)  # idle
    latencies = []
    for _ in range(20):
        sub = await client.submit("quick")
        done = await client.wait(sub.id, 5)
        assert done.started_at is not None and done.submitted_at is not None
        latencies.append((done.started_at - done.submitted_at).total_seconds())
    latencies.sort()
    assert latencies[10] < 0.05  # the wake-up signal works (the 5 s safety poll would be far slower)


async def test_a_worker_at_capacity_waits_for_a_free_slot_without_spinning_on_new_work(
    run_worker: Runner, client: JobbersClient
) -> None:
    @register_task(name="long_one")
    async def long_one() -> None:
        await asyncio.sleep(1.5)

    await run_worker(worker_concurrent_tasks=1)
    first = await client.submit("long_one")
    while (await client.get(first.id)).status is not TaskStatus.STARTED:
        await asyncio.sleep(0.01)
    second = await client.submit("long_one")  # its wake-up reaches a worker with no free slot
    cpu = time.process_time()
    await asyncio.sleep(1.0)
    # This process only waits meanwhile; a claim loop spinning on the wake-up took a whole core.
    assert time.process_time() - cpu < 0.5
    assert (await client.wait(second.id, 10)).status is TaskStatus.COMPLETED


async def test_scheduled_task_runs_at_its_time(run_worker: Runner, client: JobbersClient) -> None:
    @register_task(name="later")
    async def later() -> None: ...

    await run_worker(scheduler=True)
    run_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.4)
    sub = await client.submit("later", run_at=run_at)
    assert sub.status is TaskStatus.SCHEDULED
    done = await client.wait(sub.id, 5)
    assert done.status is TaskStatus.COMPLETED and done.started_at is not None
    assert done.started_at >= run_at - dt.timedelta(milliseconds=20)


async def test_worker_reports_itself_alive_and_leaves_the_list_on_exit(
    run_worker: Runner, client: JobbersClient, store: TaskStore
) -> None:
    @register_task(name="sleepy")
    async def sleepy() -> None:
        await asyncio.sleep(5)

    stats = PlatformStats(store)
    worker = await run_worker()
    await client.submit("sleepy")

    async def workers() -> list[WorkerRecord]:
        return (await stats.snapshot([])).workers

    deadline = time.monotonic() + 5
    while [w.running for w in await workers()] != [1]:  # reported again within a refresh interval
        assert time.monotonic() < deadline, await workers()
        await asyncio.sleep(0.02)
    (seen,) = await workers()
    assert (seen.id, seen.role, seen.queues) == (worker.worker_id, "default", ["default"])
    assert seen.slots == worker.slots
    worker.request_shutdown()
    while await workers():
        assert time.monotonic() < deadline + 5, "the worker stayed listed after a clean exit"
        await asyncio.sleep(0.02)


async def test_a_dead_workers_task_is_recovered_when_a_failover_lost_its_queue_from_the_queue_set(
    settings: Settings, store: TaskStore, config: ConfigStore
) -> None:
    task_id = (await store.submit(NewTask(name="t"))).id
    (claimed,) = (await store.claim("gone", 0.05, 1, [QueueConfig(name="default")])).tasks
    await asyncio.sleep(0.1)  # its worker is gone: the lease expired
    await store.redis.delete(store.keys.queues)  # as a failover that lost the set's write
    assert (await store.recover_expired_leases()).requeued == []  # its queue is not found
    await Scheduler(settings, store, config).run_once()  # records the queues it serves, then recovers
    assert "default" in await store.known_queues()
    (task,) = await store.get_tasks([task_id])
    assert task.status is TaskStatus.SUBMITTED and claimed.id == task_id
