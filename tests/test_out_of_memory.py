"""Issue 9 §4: Redis out of memory (``maxmemory`` reached, ``noeviction``). Leases are still
renewed and pruning still frees memory; claims and the recovery of leases and hung tasks are
refused whole (nothing is taken back from a worker Redis would not let renew); ``/readyz`` says
so. On every Redis version at hand: Redis 7 states these rules by script flags, Redis 6.2 by the
script's first write (jobbers.state.scripts)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobbers.cleaner.cleaner import run_cleaner
from jobbers.cleaner.decisions import CleanerOptions
from jobbers.config_store import ConfigStore
from jobbers.manager import create_app
from jobbers.models.event import EventKind
from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import TaskStatus
from jobbers.settings import Settings
from jobbers.state.codec import pack
from jobbers.state.events import EventLog
from jobbers.state.reconnect import is_out_of_memory
from jobbers.state.records import LeaseRenewal, NewTask, Outcome
from jobbers.state.scripts import OOM_RULES, SCRIPT_NAMES, OomRule, script_source
from jobbers.state.store import TaskStore
from tests.e2e import E2E, make_e2e, wait_until
from tests.helpers import assert_exactly_one_terminal_state
from tests.manager_support import register_test_tasks, running
from tests.oom import free_memory, push_out_of_memory
from tests.oom import is_out_of_memory as is_redis_out_of_memory
from tests.redis_server import RedisServer, every_redis_version

VERSIONS = every_redis_version()
DEFAULT = [QueueConfig(name="default")]


@pytest.fixture(scope="module", params=sorted(VERSIONS))
def oom_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A redis-server of this module's own: its tests take it out of memory."""
    server = RedisServer(VERSIONS[request.param])
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def oom_redis(oom_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(oom_server.url)
    await client.config_set("maxmemory", "0")
    yield client
    await client.config_set("maxmemory", "0")
    await client.flushall()
    await client.aclose()


@pytest.fixture
def oom_store(oom_redis: Redis, key_prefix: str) -> TaskStore:
    return TaskStore(oom_redis, key_prefix)


@pytest.fixture
async def oom_e2e(
    oom_server: RedisServer, oom_redis: Redis, key_prefix: str, tmp_path: Path
) -> AsyncIterator[E2E]:
    """Real processes on the module's own Redis (which ``oom_redis`` puts back after the test)."""
    async for env in make_e2e(oom_server, key_prefix, tmp_path):
        yield env


async def major_version(redis: Redis) -> int:
    return int(str((await redis.info("server"))["redis_version"]).split(".")[0])


def test_each_rule_is_stated_by_flags_or_by_a_first_write_that_changes_nothing() -> None:
    for name in SCRIPT_NAMES:
        flagged, unflagged = script_source(name), script_source(name, flags=False)
        rule = OOM_RULES.get(name)
        if rule is None:
            assert flagged == unflagged and not flagged.startswith("#!")
            continue
        assert flagged.splitlines()[0] == ("#!lua flags=allow-oom" if rule is OomRule.ALLOW else "#!lua")
        lines = unflagged.splitlines()
        before_body = lines[lines.index("local result = body()") - 1]  # the first write the script makes
        guard = {
            OomRule.ALLOW: "redis.call('DEL', K_oom_guard)",
            OomRule.DENY: "redis.call('SET', K_oom_guard, '1', 'XX')",
        }[rule]
        assert before_body.startswith(guard) and "oom_guard" not in flagged


async def test_leases_are_renewed_and_heartbeats_written_while_out_of_memory(
    oom_redis: Redis, oom_store: TaskStore
) -> None:
    ids = [o.id for o in await oom_store.submit_many([NewTask(name="t"), NewTask(name="t")])]
    claimed = (await oom_store.claim("w", 0.5, 2, DEFAULT)).tasks
    await push_out_of_memory(oom_redis)
    for _ in range(3):  # three lease periods, each renewed
        await asyncio.sleep(0.3)
        leases = [LeaseRenewal(t.id, t.token, heartbeat=True) for t in claimed]
        lost, cancel = await oom_store.renew_leases(0.5, leases)
        assert lost == [] and cancel == []
    tasks = await oom_store.get_tasks(ids)
    assert [t.status for t in tasks] == [TaskStatus.STARTED] * 2 and all(t.last_heartbeat_at for t in tasks)
    assert oom_store._scripts.flags_supported == (await major_version(oom_redis) >= 7)


async def test_progress_is_kept_while_out_of_memory_and_its_event_waits_for_memory(
    oom_redis: Redis, oom_store: TaskStore
) -> None:
    task_id = (await oom_store.submit(NewTask(name="t"))).id
    (claimed,) = (await oom_store.claim("w", 30, 1, DEFAULT)).tasks

    def report(current: int) -> LeaseRenewal:
        return LeaseRenewal(claimed.id, claimed.token, progress=pack([current, 10, "", 0]),
                            progress_text=f"{current}/10")  # fmt: skip

    junk = await push_out_of_memory(oom_redis)
    assert await oom_store.renew_leases(30, [report(3)]) == ([], [])
    events = EventLog(oom_store)
    record = await oom_redis.hget(oom_store.keys.space("default").task(task_id), "progress")
    assert record == pack([3, 10, "", 0])  # the latest report replaces the last: no growth
    assert EventKind.PROGRESS not in [e.type for e in await events.task_events(task_id) or []]
    await free_memory(oom_redis, junk)
    await oom_store.renew_leases(30, [report(4)])
    progress = [e for e in await events.task_events(task_id) or [] if e.type == EventKind.PROGRESS]
    assert [e.detail for e in progress] == ["4/10"]


async def test_a_live_worker_still_reports_itself_while_out_of_memory(
    oom_redis: Redis, oom_store: TaskStore
) -> None:
    await oom_store.report_worker("w1", 5, {"role": "default", "running": 0})
    await push_out_of_memory(oom_redis)
    await oom_store.report_worker("w1", 5, {"role": "default", "running": 3})
    assert await oom_redis.hget(oom_store.keys.worker("w1"), "running") == b"3"


async def test_a_script_whose_function_cannot_be_loaded_out_of_memory_runs_by_evalsha(
    oom_redis: Redis, oom_store: TaskStore
) -> None:
    functions = await major_version(oom_redis) >= 7
    await oom_store.report_worker("w1", 5, {"role": "default", "running": 0})
    if functions:
        await oom_redis.function_flush()  # as after a restart: the next call loads it again
    junk = await push_out_of_memory(oom_redis)
    await oom_store.report_worker("w1", 5, {"role": "default", "running": 2})  # FUNCTION LOAD is refused
    assert await oom_redis.hget(oom_store.keys.worker("w1"), "running") == b"2"
    if functions:
        assert await oom_redis.function_list("jobbers_worker_seen_*") == []
    await free_memory(oom_redis, junk)
    await oom_store.report_worker("w1", 5, {"role": "default", "running": 3})
    assert await oom_redis.hget(oom_store.keys.worker("w1"), "running") == b"3"
    if functions:
        assert len(await oom_redis.function_list("jobbers_worker_seen_*")) == 1  # loaded once memory is back


async def test_the_scheduler_still_promotes_due_tasks_while_out_of_memory(
    oom_redis: Redis, oom_store: TaskStore
) -> None:
    assert (await oom_store.promote_due("default", 10)).promoted == 0  # its script is loaded
    run_at = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=100)
    task_id = (await oom_store.submit(NewTask(name="t", run_at=run_at))).id
    await push_out_of_memory(oom_redis)
    await asyncio.sleep(0.15)
    assert (await oom_store.promote_due("default", 10)).promoted == 1  # allow-oom: not refused
    (task,) = await oom_store.get_tasks([task_id])
    assert task.status is TaskStatus.SUBMITTED


async def test_a_script_that_only_reads_runs_while_out_of_memory(oom_redis: Redis, oom_store: TaskStore) -> None:
    await oom_store.submit(NewTask(name="t"))
    assert [s.depth for s in await oom_store.queue_stats(["default"])] == [1]
    await push_out_of_memory(oom_redis)
    assert [s.depth for s in await oom_store.queue_stats(["default"])] == [1]  # no-writes: not refused


async def test_expired_leases_are_not_recovered_while_out_of_memory(
    oom_redis: Redis, oom_store: TaskStore
) -> None:
    task_id = (await oom_store.submit(NewTask(name="t"))).id
    await oom_store.claim("w", 0.1, 1, DEFAULT)
    await asyncio.sleep(0.2)  # the lease has expired: its worker is gone
    junk = await push_out_of_memory(oom_redis)
    for recover in (oom_store.recover_expired_leases, lambda: oom_store.stall_silent_tasks(0.05)):
        with pytest.raises(RedisError) as refused:
            await recover()
        assert is_out_of_memory(refused.value), refused.value
    (task,) = await oom_store.get_tasks([task_id])
    assert task.status is TaskStatus.STARTED and task.stall_count == 0 and task.errors == []
    await free_memory(oom_redis, junk)
    assert (await oom_store.recover_expired_leases()).requeued == [task_id]


async def test_a_claim_is_refused_whole_while_out_of_memory(oom_redis: Redis, oom_store: TaskStore) -> None:
    task_id = (await oom_store.submit(NewTask(name="t"))).id
    junk = await push_out_of_memory(oom_redis)
    with pytest.raises(RedisError) as refused:
        await oom_store.claim("w", 30, 1, DEFAULT)
    assert is_out_of_memory(refused.value), refused.value
    (task,) = await oom_store.get_tasks([task_id])
    assert task.status is TaskStatus.SUBMITTED
    await free_memory(oom_redis, junk)
    assert [t.id for t in (await oom_store.claim("w", 30, 1, DEFAULT)).tasks] == [task_id]


async def test_an_outcome_reported_while_out_of_memory_is_written(oom_redis: Redis, oom_store: TaskStore) -> None:
    ids = [o.id for o in await oom_store.submit_many([NewTask(name="t"), NewTask(name="t")])]
    claimed = (await oom_store.claim("w", 30, 2, DEFAULT)).tasks
    await push_out_of_memory(oom_redis)
    outcomes = [
        Outcome(claimed[0].id, claimed[0].token, TaskStatus.COMPLETED, result=pack(1)),
        Outcome(claimed[1].id, claimed[1].token, TaskStatus.FAILED, error_type="E", error_message="x"),
    ]
    assert await oom_store.finish(outcomes) == [True, True]
    tasks = {t.id: t for t in await oom_store.get_tasks(ids)}
    assert tasks[claimed[0].id].status is TaskStatus.COMPLETED and tasks[claimed[1].id].status is TaskStatus.FAILED
    assert await oom_redis.zcard(oom_store.keys.space("default").inflight) == 0


async def test_the_cleaner_prunes_while_out_of_memory_and_recovers_nothing(
    oom_redis: Redis, oom_store: TaskStore
) -> None:
    done, orphan = [o.id for o in await oom_store.submit_many([NewTask(name="t"), NewTask(name="t")])]
    claimed = {t.id: t for t in (await oom_store.claim("w", 0.1, 2, DEFAULT)).tasks}
    assert await oom_store.finish([Outcome(done, claimed[done].token, TaskStatus.COMPLETED)]) == [True]
    await asyncio.sleep(0.2)  # the orphan's lease expires
    await push_out_of_memory(oom_redis)
    report = await run_cleaner(oom_store, CleanerOptions(completed_task_age=0.0))
    assert report.pruned_tasks == [done] and report.requeued == [] and report.stalled == []
    assert await oom_store.get_tasks([done]) == []
    (task,) = await oom_store.get_tasks([orphan])
    assert task.status is TaskStatus.STARTED


async def test_out_of_memory_is_reported_with_its_figures(oom_redis: Redis, oom_store: TaskStore) -> None:
    assert await oom_store.out_of_memory() is None
    junk = await push_out_of_memory(oom_redis)
    reason = await oom_store.out_of_memory()
    assert reason is not None and reason.startswith("out of memory: used_memory ")
    assert "maxmemory-policy noeviction" in reason
    await free_memory(oom_redis, junk)
    assert await oom_store.out_of_memory() is None


async def test_readyz_is_503_with_the_reason_while_redis_is_out_of_memory(
    oom_server: RedisServer, oom_redis: Redis, key_prefix: str, tmp_path: Path
) -> None:
    register_test_tasks()
    settings = Settings(redis_url=oom_server.url, redis_key_prefix=key_prefix)
    config = ConfigStore(f"sqlite+aiosqlite:///{tmp_path / 'jobbers.db'}")
    async for client in running(create_app(settings, config=config)):
        assert (await client.get("/readyz")).status_code == 200
        junk = await push_out_of_memory(oom_redis)
        ready = await client.get("/readyz")
        assert ready.status_code == 503, ready.text
        body = ready.json()
        assert body["status"] == "unavailable" and body["sql"] == "ok"
        assert body["redis"].startswith("error: out of memory: used_memory "), body
        refused = await client.post("/tasks", json={"name": "add", "params": {"a": 1}})
        assert refused.status_code == 503 and "when used memory > 'maxmemory'" in refused.json()["detail"]
        assert (await client.get("/tasks")).status_code == 200  # reads still answer
        await free_memory(oom_redis, junk)
        assert (await client.get("/readyz")).json() == {"status": "ready", "redis": "ok", "sql": "ok"}


async def test_tasks_running_through_an_out_of_memory_episode_run_once_and_all_complete(
    oom_e2e: E2E, oom_redis: Redis
) -> None:
    """Real worker and scheduler processes (lease 1.2 s). Six tasks run, a seventh waits for a free
    slot; Redis is filled with junk past ``maxmemory`` and held there for 4.5 s (over three lease
    periods), then the junk is deleted. No lease lapses and nothing is recovered: every task ran
    exactly once (the run log) and completed with no stall; the waiting task was claimed only once
    Redis had memory again."""
    e2e = oom_e2e
    worker = e2e.platform.worker(WORKER_CONCURRENT_TASKS="6")
    scheduler = e2e.platform.scheduler()
    ids = [o.id for o in await e2e.store.submit_many(
        [e2e.client.build("nap", {"seconds": 6.0}) for _ in range(4)]
        + [e2e.client.build("nap", {"seconds": 2.0}) for _ in range(2)]  # end while out of memory
    )]
    await wait_until(lambda: len(e2e.platform.runs()) == 6, 20)
    waiting = (await e2e.client.submit("nap", {"seconds": 0.2})).id  # no free slot yet
    junk = await push_out_of_memory(oom_redis)
    with pytest.raises(RedisError) as refused:
        await e2e.client.submit("nap", {"seconds": 0.2})
    assert is_out_of_memory(refused.value)
    await asyncio.sleep(4.5)
    assert await is_redis_out_of_memory(oom_redis)  # throughout
    during = {t.id: t for t in await e2e.store.get_tasks([*ids, waiting])}
    assert [during[i].status for i in ids[:4]] == [TaskStatus.STARTED] * 4
    assert during[waiting].status is TaskStatus.SUBMITTED  # its claim was refused
    await free_memory(oom_redis, junk)
    tasks = await e2e.wait_terminal([*ids, waiting], 30)
    assert [t.status for t in tasks] == [TaskStatus.COMPLETED] * 7, [(t.status, t.errors) for t in tasks]
    assert [t.stall_count for t in tasks] == [0] * 7
    assert Counter(task_id for task_id, _ in e2e.platform.runs()) == Counter([*ids, waiting])  # once each
    scheduler_log = e2e.platform.log_of(scheduler)
    assert "Redis is out of memory" in scheduler_log and "lease recovery goes on" in scheduler_log
    assert "expired leases" not in scheduler_log
    refused_claim = r"claim failed \(.*command not allowed when used memory > 'maxmemory'"
    assert re.search(refused_claim, e2e.platform.log_of(worker))
    await assert_exactly_one_terminal_state(e2e.store, [*ids, waiting])


async def test_a_redis_that_will_not_answer_info_is_not_taken_for_out_of_memory(
    oom_server: RedisServer, oom_redis: Redis, oom_store: TaskStore, key_prefix: str
) -> None:
    await push_out_of_memory(oom_redis)
    assert await oom_store.out_of_memory() is not None
    await oom_redis.acl_setuser("noinfo", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
                                commands=["+@all", "-info"])  # fmt: skip
    client = Redis(port=oom_server.port, username="noinfo", password="pw")
    try:
        assert await TaskStore(client, key_prefix).out_of_memory() is None  # readiness rests on the ping
    finally:
        await client.aclose()
        await oom_redis.acl_deluser("noinfo")
