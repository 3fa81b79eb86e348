"""State-layer tests: one or more per Lua script, against real Redis 7 and Redis 6.2."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from jobbers.client import JobbersClient
from jobbers.errors import IdempotencyConflictError
from jobbers.models.queue_config import QueueConfig, RatePeriod, rate_limit_allows
from jobbers.models.task import TaskStatus
from jobbers.state.codec import pack
from jobbers.state.store import (
    QUEUE_RECORD_SECONDS,
    SUBMITTED_MEMORY,
    LeaseRenewal,
    NewTask,
    Outcome,
    StallConfig,
    TaskStore,
    is_valid_task_id,
    new_task_id,
)
from tests.helpers import assert_exactly_one_terminal_state, dead_letter_ids, status_index_of

DEFAULT = [QueueConfig(name="default")]


async def _status(store: TaskStore, task_id: str) -> TaskStatus:
    task = await store.get_task(task_id)
    assert task is not None
    return task.status


async def test_submit_writes_record_and_queue_entry_atomically(store: TaskStore) -> None:
    out = await store.submit(NewTask(name="t", params={"a": 1, "big": 2**62, "nested": {"x": []}}))
    assert out.created and out.status is TaskStatus.SUBMITTED and is_valid_task_id(out.id)
    task = await store.get_task(out.id)
    assert task is not None
    assert task.params == {"a": 1, "big": 2**62, "nested": {"x": []}}
    assert await store.queue_depth("default") == 1
    assert await status_index_of(store, out.id) == [TaskStatus.SUBMITTED]


async def _script_calls(store: TaskStore) -> int:
    stats = await store.redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "fcall"))


async def test_concurrent_single_submits_share_script_calls_and_are_answered_each(store: TaskStore) -> None:
    await store.submit(NewTask(name="t"))  # the script is loaded
    calls = await _script_calls(store)
    tasks = [NewTask(name="t", params={"n": n}) for n in range(200)]
    outcomes = await asyncio.gather(*(store.submit(t) for t in tasks))
    assert [o.id for o in outcomes] == [t.id for t in tasks]
    assert all(o.created and o.status is TaskStatus.SUBMITTED for o in outcomes)
    assert await _script_calls(store) - calls < 50  # group commit: far fewer calls than tasks
    assert await store.queue_depth("default") == 201
    for t in tasks[::37]:
        got = await store.get_task(t.id)
        assert got is not None and got.params == t.params


async def test_a_keyed_submit_goes_alone_so_its_conflict_refuses_no_neighbour(store: TaskStore) -> None:
    await store.submit(NewTask(name="t", idempotency_key="k", fingerprint="a"))
    plain = [NewTask(name="t") for _ in range(20)]
    results = await asyncio.gather(
        *(store.submit(t) for t in plain[:10]),
        store.submit(NewTask(name="t", idempotency_key="k", fingerprint="b")),
        *(store.submit(t) for t in plain[10:]),
        return_exceptions=True,
    )
    assert isinstance(results[10], IdempotencyConflictError)
    assert [r.id for r in results if not isinstance(r, BaseException)] == [t.id for t in plain]
    assert await store.queue_depth("default") == 21


async def test_a_submit_cancelled_while_it_waits_for_the_call_on_its_way_is_not_written(store: TaskStore) -> None:
    await store.submit(NewTask(name="t"))
    first = asyncio.ensure_future(store.submit(NewTask(name="t")))
    await asyncio.sleep(0)  # first is on its way
    waiting = NewTask(name="t")
    second = asyncio.ensure_future(store.submit(waiting))
    await asyncio.sleep(0)
    second.cancel()
    await first
    with pytest.raises(asyncio.CancelledError):
        await second
    assert await store.get_task(waiting.id) is None
    after = await store.submit(NewTask(name="t"))  # the batcher is idle again
    assert after.created and await store.queue_depth("default") == 3


async def _calls_of(store: TaskStore, command: str) -> int:
    stats = await store.redis.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_a_task_read_back_by_its_submitter_needs_no_locator_look_up(store: TaskStore, redis: Redis) -> None:
    mine = await store.submit(NewTask(name="t", queue="q1"))
    theirs = await TaskStore(redis, store.keys.prefix).submit(NewTask(name="t", queue="q2"))
    before = await _calls_of(store, "hmget")
    got = await store.get_task(mine.id)
    assert got is not None and got.queue == "q1"
    assert await _calls_of(store, "hmget") == before  # the submitter knew its queue
    other = await store.get_task(theirs.id)
    assert other is not None and other.queue == "q2"
    assert await _calls_of(store, "hmget") == before + 1  # another's task: found by the locator


async def test_submit_with_the_same_id_or_idempotency_key_returns_the_same_task(store: TaskStore) -> None:
    task_id = new_task_id()
    first = await store.submit(NewTask(name="t", id=task_id))
    again = await store.submit(NewTask(name="t", id=task_id))
    assert again.id == first.id and not again.created
    k1 = await store.submit(NewTask(name="t", idempotency_key="order-7"))
    k2 = await store.submit(NewTask(name="t", idempotency_key="order-7"))
    assert k1.id == k2.id and k1.created and not k2.created
    assert await store.queue_depth("default") == 2


async def test_an_idempotency_key_with_another_fingerprint_is_refused_and_writes_nothing(store: TaskStore) -> None:
    first = await store.submit(NewTask(name="t", idempotency_key="order-8", fingerprint="aaa"))
    again = await store.submit(NewTask(name="t", idempotency_key="order-8", fingerprint="aaa"))
    unfingerprinted = await store.submit(NewTask(name="t", idempotency_key="order-8"))  # "" matches any
    with pytest.raises(IdempotencyConflictError, match="order-8.*different request"):
        await store.submit_many([NewTask(name="t"), NewTask(name="t", idempotency_key="order-8", fingerprint="bbb")])
    assert first.created and again.id == unfingerprinted.id == first.id and not again.created
    assert await store.queue_depth("default") == 1  # the refused call wrote neither of its tasks


async def test_an_idempotency_record_from_before_fingerprints_still_returns_its_task(store: TaskStore) -> None:
    first = await store.submit(NewTask(name="t"))
    await store.redis.set(store.keys.space("default").idem("old-key"), first.id)  # what earlier versions stored

    again = await store.submit(NewTask(name="t", idempotency_key="old-key", fingerprint="ccc"))

    assert again.id == first.id and not again.created


async def test_the_client_refuses_an_idempotency_key_reused_for_other_params(store: TaskStore) -> None:
    client = JobbersClient(store)
    first = await client.submit("t", {"a": 1}, idempotency_key="pay-1")
    assert (await client.submit("t", {"a": 1}, idempotency_key="pay-1")).id == first.id
    with pytest.raises(IdempotencyConflictError):
        await client.submit("t", {"a": 2}, idempotency_key="pay-1")


async def test_the_client_carries_a_correlation_id_on_submit_build_and_submit_many(store: TaskStore) -> None:
    client = JobbersClient(store)
    one = await client.submit("t", correlation_id="session-9")
    many = await client.submit_many([client.build("t", correlation_id="session-9"), client.build("t")])
    (claimed,) = (await store.claim("w", 30, 1, [QueueConfig(name="default")])).tasks

    tasks = await store.get_tasks([one.id, *(o.id for o in many)])
    assert [t.correlation_id for t in tasks] == ["session-9", "session-9", None]
    assert claimed.id == one.id and claimed.correlation_id == "session-9"  # the worker knows it
    for bad in ("", "x" * 257):
        with pytest.raises(ValueError, match="correlation_id"):
            client.build("t", correlation_id=bad)


async def test_submit_in_the_future_schedules_and_promote_moves_it_when_due(store: TaskStore) -> None:
    run_at = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=300)
    out = await store.submit(NewTask(name="t", run_at=run_at))
    assert out.status is TaskStatus.SCHEDULED
    count, next_due, now_ms, lag = await store.promote_due("default", 10)
    assert count == 0 and next_due is not None and next_due > now_ms and lag == 0
    await asyncio.sleep(0.35)
    count, next_due, _, lag = await store.promote_due("default", 10)
    assert count == 1 and next_due is None and 0 <= lag < 1000  # promoted this late past its run_at
    assert await _status(store, out.id) is TaskStatus.SUBMITTED


async def test_two_promoters_at_once_never_promote_a_task_twice(store: TaskStore) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    ids = [t.id for t in await store.submit_many([NewTask(name="t", run_at=past + dt.timedelta(seconds=2))
                                                   for _ in range(300)])]
    await asyncio.sleep(1.1)
    results = await asyncio.gather(*[store.promote_due("default", 7) for _ in range(100)])
    assert sum(r[0] for r in results) == 300
    assert await store.queue_depth("default") == 300
    assert {await _status(store, i) for i in ids} == {TaskStatus.SUBMITTED}


async def test_claim_records_the_lease_and_marks_started_in_one_step(store: TaskStore) -> None:
    ids = [o.id for o in await store.submit_many([NewTask(name="t") for _ in range(5)])]
    result = await store.claim("w1", 30, 3, DEFAULT)
    assert [t.id for t in result.tasks] == ids[:3]  # FIFO
    for t in result.tasks:
        assert await _status(store, t.id) is TaskStatus.STARTED
        deadline = await store.redis.zscore(store.keys.space("default").inflight, t.id)
        assert deadline is not None and deadline > result.now_ms
    assert await store.queue_depth("default") == 2


async def test_claim_enforces_max_concurrent_across_workers(store: TaskStore) -> None:
    await store.submit_many([NewTask(name="t", queue="q") for _ in range(10)])
    q = [QueueConfig(name="q", max_concurrent=3)]
    a = await store.claim("w1", 30, 2, q)
    b = await store.claim("w2", 30, 5, q)
    assert (len(a.tasks), len(b.tasks)) == (2, 1)
    await store.finish([Outcome(id=a.tasks[0].id, token=a.tasks[0].token, status="completed")])
    c = await store.claim("w3", 30, 5, q)
    assert len(c.tasks) == 1
    assert await store.queue_depth("q") == 6  # delayed, never dropped


async def test_a_queues_running_count_is_its_started_tasks_and_an_old_running_set_is_ignored(
    store: TaskStore,
) -> None:
    """max_concurrent and the queue's figures count the started tasks of its space; the running set
    earlier versions kept (``running:<queue>``), left behind in Redis, is neither read nor written."""
    await store.submit_many([NewTask(name="t", queue="q") for _ in range(4)])
    leftover = store.keys.space_prefix("q") + "running:q"
    await store.redis.sadd(leftover, "gone-1", "gone-2")  # type: ignore[misc]
    q = [QueueConfig(name="q", max_concurrent=2)]
    first = await store.claim("w1", 30, 5, q)
    assert len(first.tasks) == 2 and (await store.queue_stats(["q"]))[0].running == 2
    await store.finish([Outcome(id=first.tasks[0].id, token=first.tasks[0].token, status="completed")])
    assert len((await store.claim("w2", 30, 5, q)).tasks) == 1
    assert (await store.queue_stats(["q"]))[0].running == 2
    assert await store.redis.smembers(leftover) == {b"gone-1", b"gone-2"}  # type: ignore[misc]


async def test_claim_enforces_the_rate_limit_and_says_when_to_retry(store: TaskStore) -> None:
    await store.submit_many([NewTask(name="t", queue="r") for _ in range(5)])
    q = [QueueConfig(name="r", rate_numerator=2, rate_denominator=1, rate_period=RatePeriod.SECOND)]
    first = await store.claim("w1", 30, 5, q)
    second = await store.claim("w2", 30, 5, q)
    assert len(first.tasks) == 2 and second.tasks == []
    assert second.retry_in_ms is not None and 0 < second.retry_in_ms <= 1001
    await asyncio.sleep(second.retry_in_ms / 1000)
    assert len((await store.claim("w2", 30, 5, q)).tasks) == 2
    assert await store.queue_depth("r") == 1


def test_rate_limit_arithmetic() -> None:
    assert rate_limit_allows(limit=10, started_in_window=7, wanted=5) == 3
    assert rate_limit_allows(limit=10, started_in_window=10, wanted=5) == 0
    assert rate_limit_allows(limit=10, started_in_window=12, wanted=5) == 0
    assert QueueConfig(name="q", rate_numerator=100, rate_denominator=2, rate_period="hour").rate_window_ms == 7_200_000


async def test_renew_extends_leases_records_heartbeats_and_reports_lost_and_cancelled(store: TaskStore) -> None:
    a, b = [o.id for o in await store.submit_many([NewTask(name="t"), NewTask(name="t")])]
    claimed = {t.id: t for t in (await store.claim("w", 0.2, 2, DEFAULT)).tasks}
    await store.cancel([b])
    lost, cancel = await store.renew_leases(30, [
        LeaseRenewal(a, claimed[a].token, heartbeat=True),
        LeaseRenewal(b, claimed[b].token),
        LeaseRenewal("nope", "x"),
    ])
    assert [lease.id for lease in lost] == ["nope"] and cancel == [b]
    task = await store.get_task(a)
    assert task is not None and task.last_heartbeat_at is not None
    await asyncio.sleep(0.3)
    recovered = await store.recover_expired_leases()
    assert recovered.requeued == [] and recovered.stalled == []  # renewed, so not expired


async def test_cancel_in_each_state(store: TaskStore) -> None:
    queued = (await store.submit(NewTask(name="t"))).id
    later = (await store.submit(NewTask(name="t", run_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)))).id
    running = (await store.submit(NewTask(name="t"))).id
    # claim 'queued' first (FIFO), cancel it later while running; use a separate one for queued-cancel
    claimed = (await store.claim("w", 30, 1, DEFAULT)).tasks[0]
    assert claimed.id == queued
    outcomes = {o.id: o for o in await store.cancel([running, later, queued, new_task_id()])}
    assert outcomes[running].outcome == "cancelled"  # was still queued
    assert outcomes[later].outcome == "cancelled"
    assert outcomes[queued].outcome == "requested"  # running: durable flag + pub/sub
    assert sum(o.outcome == "not_found" for o in outcomes.values()) == 1
    assert await store.queue_depth("default") == 0
    assert await store.redis.zcard(store.keys.queue("default").sched) == 0
    task = await store.get_task(queued)
    assert task is not None and task.status is TaskStatus.STARTED and task.cancel_requested
    await store.finish([Outcome(id=queued, token=claimed.token, status="cancelled")])
    assert await assert_exactly_one_terminal_state(store, [queued, later, running]) == {"cancelled": 3}


async def test_a_cancel_request_racing_a_claim_always_ends_in_one_terminal_state(store: TaskStore) -> None:
    for _ in range(60):
        task_id = (await store.submit(NewTask(name="t"))).id
        claim, (cancel,) = await asyncio.gather(store.claim("w", 30, 1, DEFAULT), store.cancel([task_id]))
        if claim.tasks:
            assert cancel.outcome == "requested"
            _, to_cancel = await store.renew_leases(30, [LeaseRenewal(task_id, claim.tasks[0].token)])
            assert to_cancel == [task_id]  # the worker learns of it on its next renewal at the latest
            await store.finish([Outcome(id=task_id, token=claim.tasks[0].token, status="cancelled")])
        else:
            assert cancel.outcome == "cancelled"
        await assert_exactly_one_terminal_state(store, [task_id])


async def test_claim_ends_a_queued_task_whose_cancel_flag_is_set(store: TaskStore) -> None:
    task_id = (await store.submit(NewTask(name="t"))).id
    await store.redis.hset(store.keys.space("default").task(task_id), "cancel_requested", "1")  # flag written, entry still queued
    assert (await store.claim("w", 30, 1, DEFAULT)).tasks == []
    assert await _status(store, task_id) is TaskStatus.CANCELLED


async def test_finish_writes_results_retries_and_dead_letters(store: TaskStore) -> None:
    ids = [o.id for o in await store.submit_many([NewTask(name="t") for _ in range(3)])]
    c = {t.id: t for t in (await store.claim("w", 30, 3, DEFAULT)).tasks}
    written = await store.finish([
        Outcome(id=ids[0], token=c[ids[0]].token, status="completed", result=pack({"url": "/r/42.pdf"})),
        Outcome(id=ids[1], token=c[ids[1]].token, status="retry", error_type="ConnectionError",
                error_message="upstream timed out", retry_attempt=1, delay_ms=0),
        Outcome(id=ids[2], token=c[ids[2]].token, status="failed", error_type="ValueError",
                error_message="bad", dead_letter=True),
    ])
    assert written == [True, True, True]
    done, retried, failed = await store.get_tasks(ids)
    assert done.result == {"url": "/r/42.pdf"} and done.completed_at is not None
    assert retried.status is TaskStatus.SUBMITTED and retried.retry_attempt == 1
    assert retried.errors[0].exception_type == "ConnectionError" and retried.errors[0].attempt == 0
    assert failed.status is TaskStatus.FAILED and failed.dead_lettered and failed.error == "ValueError: bad"
    assert await dead_letter_ids(store) == [ids[2]]


async def test_expired_lease_requeues_up_to_the_stall_budget_then_stalls(store: TaskStore) -> None:
    task_id = (await store.submit(NewTask(name="t", max_stalls=1, dead_letter=True))).id
    first = (await store.claim("w", 0.05, 1, DEFAULT)).tasks[0]
    await asyncio.sleep(0.1)
    assert (await store.recover_expired_leases()).requeued == [task_id]
    second = (await store.claim("w2", 0.05, 1, DEFAULT)).tasks[0]
    assert second.stall_count == 1
    await asyncio.sleep(0.1)
    assert (await store.recover_expired_leases()).stalled == [task_id]
    # the first and second workers' late writes are both fenced off
    assert await store.finish([Outcome(id=task_id, token=first.token, status="completed"),
                               Outcome(id=task_id, token=second.token, status="completed")]) == [False, False]
    task = await store.get_task(task_id)
    assert task is not None and task.status is TaskStatus.STALLED and task.dead_lettered
    assert [e.exception_type for e in task.errors] == ["LeaseExpired", "LeaseExpired"]
    await assert_exactly_one_terminal_state(store, [task_id])


async def test_silent_heartbeat_stalls_by_task_interval_or_stale_time(store: TaskStore) -> None:
    own = (await store.submit(NewTask(name="t", max_heartbeat_interval=dt.timedelta(milliseconds=100)))).id
    plain = (await store.submit(NewTask(name="t"))).id
    claimed = {t.id: t for t in (await store.claim("w", 30, 2, DEFAULT)).tasks}
    await asyncio.sleep(0.15)
    assert await store.stall_silent_tasks(None) == []  # no renewal since: its worker may be dead, not hung
    await store.renew_leases(30, [LeaseRenewal(own, claimed[own].token)])  # its worker lives
    assert await store.stall_silent_tasks(None) == [own]
    await store.renew_leases(30, [LeaseRenewal(plain, claimed[plain].token, heartbeat=True)])  # fresh heartbeat
    assert await store.stall_silent_tasks(10) == []
    await asyncio.sleep(0.15)
    await store.renew_leases(30, [LeaseRenewal(plain, claimed[plain].token)])
    now_ms = await store.redis_time_ms()
    assert await store.stall_silent_tasks(0.1, max_submitted_ms=now_ms - 60_000) == []  # outside the window
    assert await store.stall_silent_tasks(0.1) == [plain]
    await assert_exactly_one_terminal_state(store, [own, plain])


async def test_prune_removes_old_terminal_tasks_but_keeps_dead_letters_and_queued_work(store: TaskStore) -> None:
    ids = [o.id for o in await store.submit_many([NewTask(name="t") for _ in range(4)])]
    c = {t.id: t for t in (await store.claim("w", 30, 3, DEFAULT)).tasks}
    await store.finish([
        Outcome(id=ids[0], token=c[ids[0]].token, status="completed"),
        Outcome(id=ids[1], token=c[ids[1]].token, status="failed", dead_letter=True),
        Outcome(id=ids[2], token=c[ids[2]].token, status="cancelled"),
    ])
    now_ms = await store.redis_time_ms()
    removed = []
    for status in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED):
        removed += await store.prune_terminal(status, now_ms + 1)
    assert sorted(removed) == sorted([ids[0], ids[2]])
    with pytest.raises(ValueError):
        await store.prune_terminal(TaskStatus.SUBMITTED, now_ms + 1)
    with pytest.raises(ResponseError):  # the script refuses too, whoever calls it
        space = store.keys.space("default")
        await store._scripts.run("prune", space, [space.status("submitted"), space.dlq], ["submitted", now_ms + 1, 100, 0])
    assert await _status(store, ids[3]) is TaskStatus.SUBMITTED and await store.queue_depth("default") == 1
    assert await store.get_task(ids[1]) is not None
    assert await store.prune_dead_letters(now_ms + 1) == [ids[1]]
    assert await store.prune_terminal(TaskStatus.FAILED, now_ms + 1) == [ids[1]]


async def test_prune_rate_limits_removes_old_entries(store: TaskStore) -> None:
    await store.submit_many([NewTask(name="t", queue="r") for _ in range(3)])
    await store.claim("w", 30, 3, [QueueConfig(name="r", rate_numerator=100)])
    assert await store.prune_rate_limits(await store.redis_time_ms() + 1) == 3


async def test_published_task_type_config_decides_stalls_without_the_task_module(store: TaskStore) -> None:
    await store.publish_task_types([("typed", 1, StallConfig(0.05, max_stalls=1, dead_letter=True)),
                                    ("crashy", 1, StallConfig(0, max_stalls=0, dead_letter=True))], ["default"])
    silent, crashed = [o.id for o in await store.submit_many([NewTask(name="typed"), NewTask(name="crashy")])]
    claimed = {t.id: t for t in (await store.claim("w", 30, 1, DEFAULT)).tasks}
    await store.claim("w", 0.01, 1, DEFAULT)
    await asyncio.sleep(0.1)
    await store.renew_leases(30, [LeaseRenewal(silent, claimed[silent].token)])  # its worker lives
    assert await store.stall_silent_tasks(None) == [silent]  # its type's 50 ms heartbeat interval
    recovered = await store.recover_expired_leases()
    assert recovered.stalled == [crashed] and recovered.requeued == []  # its type's budget of 0 stalls
    tasks = await store.get_tasks([silent, crashed])
    assert all(t.dead_lettered for t in tasks) and claimed


async def test_renew_reports_an_earlier_lease_of_a_task_claimed_again_as_lost(store: TaskStore) -> None:
    task_id = (await store.submit(NewTask(name="t"))).id
    first = (await store.claim("w", 0.05, 1, DEFAULT)).tasks[0]
    await asyncio.sleep(0.1)
    assert (await store.recover_expired_leases()).requeued == [task_id]
    again = (await store.claim("w", 30, 1, DEFAULT)).tasks[0]
    assert again.id == task_id and again.token != first.token
    old, new = LeaseRenewal(task_id, first.token, queue="default"), LeaseRenewal(task_id, again.token)
    lost, cancel = await store.renew_leases(30, [old, new])
    assert lost == [old] and cancel == []  # the earlier run must stop; the new lease is renewed


async def test_a_queue_a_failover_lost_from_the_queue_set_is_recorded_again_by_its_next_submit(
    store: TaskStore,
) -> None:
    await store.submit(NewTask(name="t", queue="q"))
    await store.redis.delete(store.keys.queues)  # as a failover that lost the set's write
    await asyncio.sleep(QUEUE_RECORD_SECONDS)
    await store.submit(NewTask(name="t", queue="q"))
    assert await store.known_queues() == ["q"]


async def test_a_store_remembers_the_queues_of_its_newest_submits_and_forgets_the_oldest_first(
    store: TaskStore,
) -> None:
    first = await store.submit_many([NewTask(name="t", queue="q1") for _ in range(SUBMITTED_MEMORY)])
    oldest = list(store._submitted)[:10]  # in the order their calls were answered
    newest = await store.submit_many([NewTask(name="t", queue="q2") for _ in range(10)])
    remembered = store._submitted
    assert len(remembered) == SUBMITTED_MEMORY
    assert [o.id for o in first if o.id not in remembered] == [i for i in (o.id for o in first) if i in oldest]
    assert [remembered[o.id] for o in newest] == ["q2"] * 10
    before = await _calls_of(store, "hmget")
    assert await store.locate([newest[0].id, oldest[0]]) == {newest[0].id: "q2", oldest[0]: "q1"}
    assert await _calls_of(store, "hmget") == before + 1  # only the forgotten one is looked up
