"""Fault tests: kill, freeze and restart processes (and Redis). After each, every submitted task
has exactly one terminal state and none is lost (the guarantees of docs/reliability.md)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from jobbers.models.task import TaskStatus
from tests.e2e import E2E, make_e2e, wait_until
from tests.helpers import assert_exactly_one_terminal_state
from tests.processes import free_port, script
from tests.redis_server import RedisServer
from tests.tcp_proxy import TcpProxy


async def test_sigkill_with_100_tasks_in_flight_loses_nothing(e2e: E2E) -> None:
    victim = e2e.platform.worker(WORKER_CONCURRENT_TASKS="100")
    ids = [o.id for o in await e2e.store.submit_many(
        [e2e.client.build("nap", {"seconds": 4.0}) for _ in range(100)])]
    await e2e.wait_started(ids)  # long naps: none can finish before the kill, even on a loaded machine
    # "started" is written at claim time; wait until every task's code has begun too.
    await wait_until(lambda: len(e2e.platform.runs()) == len(ids), 10)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    e2e.platform.scheduler()  # recovers expired leases
    e2e.platform.worker(WORKER_CONCURRENT_TASKS="100")
    tasks = await e2e.wait_terminal(ids, 30)
    assert {t.status for t in tasks} == {TaskStatus.COMPLETED}
    assert all(t.stall_count == 1 for t in tasks)
    runs = Counter(task_id for task_id, _ in e2e.platform.runs())
    assert set(runs) == set(ids) and set(runs.values()) == {2}  # at-least-once: re-run after the crash
    await assert_exactly_one_terminal_state(e2e.store, ids)


async def test_crash_inside_the_claim_window_is_recovered(e2e: E2E) -> None:
    ids = [o.id for o in await e2e.store.submit_many([e2e.client.build("noop") for _ in range(10)])]
    crasher = e2e.platform.worker(JOBBERS_TEST_FAULT="exit_after_claim", WORKER_CONCURRENT_TASKS="10")
    assert crasher.wait(30) == 17
    claimed = [t for t in await e2e.store.get_tasks(ids) if t.status is TaskStatus.STARTED]
    assert claimed and e2e.platform.runs() == []  # claimed, never run, only in Redis
    e2e.platform.scheduler()
    e2e.platform.worker()
    tasks = await e2e.wait_terminal(ids)
    assert {t.status for t in tasks} == {TaskStatus.COMPLETED}
    await assert_exactly_one_terminal_state(e2e.store, ids)


async def test_a_frozen_workers_late_completion_is_rejected(e2e: E2E, tmp_path: Path) -> None:
    frozen = e2e.platform.worker()
    sub = await e2e.client.submit("block_first_time", {"marker": str(tmp_path / "marker"), "seconds": 2.0})
    await e2e.wait_started([sub.id])
    frozen.send_signal(signal.SIGSTOP)
    e2e.platform.scheduler()
    rescuer = e2e.platform.worker()
    (task,) = await e2e.wait_terminal([sub.id])
    assert task.status is TaskStatus.COMPLETED and task.result == rescuer.pid and task.stall_count == 1
    frozen.send_signal(signal.SIGCONT)
    await wait_until(lambda: f"late write for task {sub.id} rejected" in e2e.platform.log_of(frozen), 10)
    (after,) = await e2e.store.get_tasks([sub.id])
    assert after.result == rescuer.pid and after.completed_at == task.completed_at  # unchanged
    await assert_exactly_one_terminal_state(e2e.store, [sub.id])


async def test_sigterm_applies_each_on_shutdown_policy(e2e: E2E) -> None:
    worker = e2e.platform.worker()
    stop = await e2e.client.submit("stop_policy", {"seconds": 10})
    resubmit = await e2e.client.submit("resubmit_policy", {"seconds": 3.0})
    cont = await e2e.client.submit("continue_policy", {"seconds": 1.0})
    await e2e.wait_started([stop.id, resubmit.id, cont.id])
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    s, r, c = await e2e.store.get_tasks([stop.id, resubmit.id, cont.id])
    assert s.status is TaskStatus.STALLED and s.dead_lettered
    assert s.errors[-1].exception_type == "WorkerShutdown"
    assert r.status is TaskStatus.SUBMITTED  # really re-queued
    assert c.status is TaskStatus.COMPLETED and c.result == "finished"  # really waited
    e2e.platform.worker()
    (r,) = await e2e.wait_terminal([resubmit.id])
    assert r.status is TaskStatus.COMPLETED and r.result == "finished"
    await assert_exactly_one_terminal_state(e2e.store, [stop.id, resubmit.id, cont.id])


async def test_two_schedulers_never_promote_a_task_twice(e2e: E2E) -> None:
    run_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    ids = [o.id for o in await e2e.store.submit_many(
        [e2e.client.build("noop", run_at=run_at) for _ in range(200)])]
    e2e.platform.scheduler(SCHEDULER_BATCH_SIZE="7")
    e2e.platform.scheduler(SCHEDULER_BATCH_SIZE="7")
    e2e.platform.worker(WORKER_CONCURRENT_TASKS="20")
    tasks = await e2e.wait_terminal(ids)
    assert {t.status for t in tasks} == {TaskStatus.COMPLETED}
    runs = Counter(task_id for task_id, _ in e2e.platform.runs())
    assert set(runs) == set(ids) and set(runs.values()) == {1}
    await assert_exactly_one_terminal_state(e2e.store, ids)


async def test_two_cleaners_at_once_recover_each_task_once(e2e: E2E) -> None:
    victim = e2e.platform.worker(WORKER_CONCURRENT_TASKS="30")
    ids = [o.id for o in await e2e.store.submit_many(
        [e2e.client.build("nap", {"seconds": 0.3}) for _ in range(30)])]
    await e2e.wait_started(ids)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    await asyncio.sleep(1.5)  # past the 1.2 s lease
    cleaners = [subprocess.Popen([script("jobbers_cleaner")], env=e2e.platform.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL) for _ in range(2)]
    outputs = [json.loads(p.communicate(timeout=30)[0]) for p in cleaners]
    assert sum(o["requeued"] for o in outputs) == 30 and sum(o["stalled"] for o in outputs) == 0
    e2e.platform.worker(WORKER_CONCURRENT_TASKS="30")
    tasks = await e2e.wait_terminal(ids)
    assert {t.status for t in tasks} == {TaskStatus.COMPLETED}
    assert {t.stall_count for t in tasks} == {1}
    await assert_exactly_one_terminal_state(e2e.store, ids)


async def test_cancel_racing_claim_always_ends_cancelled(e2e: E2E) -> None:
    e2e.platform.worker()
    ids = []
    for _ in range(30):
        sub = await e2e.client.submit("nap", {"seconds": 0.5})
        outcome = await e2e.client.cancel(sub.id)
        assert outcome.outcome in ("cancelled", "requested")
        ids.append(sub.id)
    tasks = await e2e.wait_terminal(ids)
    assert {t.status for t in tasks} == {TaskStatus.CANCELLED}
    await assert_exactly_one_terminal_state(e2e.store, ids)


async def test_a_task_that_kills_its_worker_ends_stalled_after_its_stall_budget(e2e: E2E) -> None:
    e2e.platform.scheduler()
    sub = await e2e.client.submit("suicide")
    workers = 0
    while workers < 6:  # a supervisor restarting the worker each time it dies
        (task,) = await e2e.wait_for([sub.id], lambda t: t.status is not TaskStatus.STARTED)
        if task.status.is_terminal:
            break
        workers += 1
        proc = e2e.platform.worker()
        await asyncio.to_thread(proc.wait, 20)
    (task,) = await e2e.wait_terminal([sub.id])
    assert task.status is TaskStatus.STALLED and task.dead_lettered
    assert task.stall_count == 2  # max_stalls=1: one re-queue, then stalled
    assert [label for _, label in e2e.platform.runs()] == ["suicide", "suicide"]  # no crash loop
    await assert_exactly_one_terminal_state(e2e.store, [sub.id])


@pytest.fixture
async def e2e_aof(fresh_redis_server: RedisServer, key_prefix: str, tmp_path: Path) -> AsyncIterator[E2E]:
    async for env in make_e2e(fresh_redis_server, key_prefix, tmp_path):
        yield env


async def test_redis_killed_and_restarted_with_aof_under_load(e2e_aof: E2E, fresh_redis_server: RedisServer) -> None:
    e2e = e2e_aof
    e2e.platform.worker(WORKER_CONCURRENT_TASKS="20")
    e2e.platform.scheduler()
    acked: list[str] = []
    failed = 0
    for i in range(300):
        if i == 100:
            fresh_redis_server.kill()
        if i == 150:
            fresh_redis_server.start()  # same port, same AOF directory
        try:
            acked.append((await e2e.client.submit("nap", {"seconds": 0.05})).id)
        except (RedisError, OSError):
            failed += 1
            await asyncio.sleep(0.01)
    assert failed > 0 and len(acked) >= 200
    tasks = await e2e.wait_terminal(acked, 60)
    assert {t.status for t in tasks} == {TaskStatus.COMPLETED}
    await assert_exactly_one_terminal_state(e2e.store, acked)


async def test_a_scheduler_killed_mid_promotion_loses_nothing(e2e: E2E) -> None:
    run_at = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=300)
    ids = [o.id for o in await e2e.store.submit_many(
        [e2e.client.build("noop", run_at=run_at) for _ in range(3000)])]
    await asyncio.sleep(0.4)  # all due now
    victim = e2e.platform.scheduler(SCHEDULER_BATCH_SIZE="5")

    async def promoting() -> bool:
        return await e2e.store.queue_depth("default") > 0

    await wait_until(promoting, 20)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    tasks = await e2e.store.get_tasks(ids)
    moved = sum(t.status is TaskStatus.SUBMITTED for t in tasks)
    assert 0 < moved and all(t.status in (TaskStatus.SUBMITTED, TaskStatus.SCHEDULED) for t in tasks)
    e2e.platform.scheduler(SCHEDULER_BATCH_SIZE="500")
    e2e.platform.worker(WORKER_CONCURRENT_TASKS="50")
    tasks = await e2e.wait_terminal(ids, 60)
    assert {t.status for t in tasks} == {TaskStatus.COMPLETED}
    runs = Counter(task_id for task_id, _ in e2e.platform.runs())
    assert set(runs) == set(ids) and set(runs.values()) == {1}
    await assert_exactly_one_terminal_state(e2e.store, ids[:200])


async def test_a_dead_workers_tasks_are_recovered_not_stalled_by_a_cleaner_every_second(e2e: E2E) -> None:
    """Issue 8: SIGKILL a worker with 20 tasks in flight (6 s lease, renewed every 2 s) while
    ``jobbers_cleaner --stale-time 2`` runs every second: the stale-heartbeat rule spares them (their
    worker stopped renewing), they are re-queued once it missed two renewals (before the lease
    expires) and all 20 complete on another worker."""
    victim = e2e.platform.worker(WORKER_CONCURRENT_TASKS="20", WORKER_LEASE_SECONDS="6")
    ids = [o.id for o in await e2e.store.submit_many([e2e.client.build("nap_once") for _ in range(20)])]
    await wait_until(lambda: len(e2e.platform.runs()) == len(ids), 15)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    reports: list[dict[str, int]] = []

    async def clean_every_second() -> None:
        while True:
            proc = await asyncio.create_subprocess_exec(
                script("jobbers_cleaner"), "--stale-time", "2", env=e2e.platform.env,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            out, _ = await proc.communicate()
            reports.append(json.loads(out))
            await asyncio.sleep(1)

    cleaning = asyncio.create_task(clean_every_second())
    try:
        try:
            await wait_until(lambda: sum(r["requeued"] for r in reports) >= len(ids), 20)
        except AssertionError:
            raise AssertionError(f"cleaner reports: {reports}") from None
        e2e.platform.worker(WORKER_CONCURRENT_TASKS="20")
        tasks = await e2e.wait_terminal(ids, 20)
    finally:
        cleaning.cancel()
    assert {t.status for t in tasks} == {TaskStatus.COMPLETED}
    assert {t.stall_count for t in tasks} == {1}
    assert sum(r["stalled"] for r in reports) == 0 and sum(r["requeued"] for r in reports) == len(ids)
    await assert_exactly_one_terminal_state(e2e.store, ids)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_worker_that_cannot_reach_redis_stops_at_once_on_a_signal(e2e: E2E, sig: int) -> None:
    worker = e2e.platform.worker(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    # Retrying its start-up against the closed port (its signal handlers are in place by then).
    await wait_until(lambda: "publishing task types failed" in e2e.platform.log_of(worker), 20)
    assert worker.poll() is None
    worker.send_signal(sig)
    assert await asyncio.to_thread(worker.wait, 5) == 0
async def test_a_worker_cut_off_from_redis_stops_at_once_on_sigterm(
    e2e: E2E, e2e_redis_server: RedisServer
) -> None:
    """Refused before start, refused while idle, black-holed while running tasks: SIGTERM ends each
    worker within seconds, and the tasks it held are recovered once Redis is reachable again."""
    proxies = [TcpProxy(e2e_redis_server.port) for _ in range(3)]
    never_up, idle, busy = proxies
    await idle.start()
    await busy.start()  # never_up does not even listen: connection refused from the start
    starting = e2e.platform.worker(REDIS_URL=never_up.url)
    idler = e2e.platform.worker(REDIS_URL=idle.url, WORKER_ROLE="nobody")
    runner = e2e.platform.worker(REDIS_URL=busy.url, WORKER_CONCURRENT_TASKS="4")
    naps = [e2e.client.build("nap", {"seconds": 3.0}) for _ in range(4)]
    ids = [o.id for o in await e2e.store.submit_many(naps)]
    await e2e.wait_started(ids)
    await wait_until(lambda: "publishing task types failed" in e2e.platform.log_of(starting), 10)
    await wait_until(lambda: "consumes no queue" in e2e.platform.log_of(idler), 10)
    await idle.refuse()
    await busy.black_hole()
    await asyncio.sleep(1.0)  # renewals and reports now fail (or hang) in every worker
    for proc in (starting, idler, runner):
        proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    for proc in (starting, idler, runner):
        assert await asyncio.to_thread(proc.wait, 10) == 0, e2e.platform.log_of(proc)
    assert time.monotonic() - started < 8  # shutdown grace 3 s + bounded writes, not a hang
    e2e.platform.scheduler()
    e2e.platform.worker(WORKER_CONCURRENT_TASKS="4")
    tasks = await e2e.wait_terminal(ids, 30)
    assert {t.status for t in tasks} == {TaskStatus.COMPLETED}
    await assert_exactly_one_terminal_state(e2e.store, ids)
    for proxy in proxies:
        await proxy.close()


def overlapping_runs(platform_runs: list[tuple[str, str]], begin: str, end: str) -> list[str]:
    """Ids of tasks of which one execution began while another had not ended (one process's log)."""
    open_runs: Counter[str] = Counter()
    overlapping = []
    for task_id, label in platform_runs:
        if label == begin:
            if open_runs[task_id]:
                overlapping.append(task_id)
            open_runs[task_id] += 1
        elif label == end:
            open_runs[task_id] -= 1
    return overlapping


@pytest.mark.parametrize("cut", ["refused", "black_hole"])
async def test_a_worker_partitioned_past_its_lease_runs_each_task_at_most_twice_never_at_once(
    e2e: E2E, e2e_redis_server: RedisServer, cut: str
) -> None:
    """Issue 9 §1: cut a worker's Redis for 12 s with a 9 s lease while it runs 3 tasks. The
    scheduler re-queues them (one stall each); once healed, the worker stops each earlier run (its
    lease is lost) before it runs the task again: no run overlaps another of the same task, none
    ends stalled, and each completes after at most two executions."""
    proxy = TcpProxy(e2e_redis_server.port)
    await proxy.start()
    e2e.platform.worker(REDIS_URL=proxy.url, WORKER_LEASE_SECONDS="9", WORKER_CONCURRENT_TASKS="5")
    e2e.platform.scheduler()  # reaches Redis directly: it recovers the partitioned worker's tasks
    ids = [o.id for o in await e2e.store.submit_many(
        [e2e.client.build("nap_spans", {"seconds": 15.0}) for _ in range(3)])]
    await wait_until(lambda: len(e2e.platform.runs()) == len(ids), 15)
    await (proxy.refuse() if cut == "refused" else proxy.black_hole())
    await asyncio.sleep(12)
    during = await e2e.store.get_tasks(ids)
    await proxy.heal()
    try:
        assert all(t.stall_count == 1 for t in during), [(t.status, t.stall_count) for t in during]
        tasks = await e2e.wait_terminal(ids, 60)
        assert [t.status for t in tasks] == [TaskStatus.COMPLETED] * 3, [(t.status, t.errors) for t in tasks]
        assert {t.stall_count for t in tasks} == {1}  # the lease lost to the partition, once
        runs = e2e.platform.runs()
        executions = Counter(task_id for task_id, label in runs if label == "nap_spans")
        assert set(executions) == set(ids) and max(executions.values()) <= 2, executions
        assert overlapping_runs(runs, "nap_spans", "nap_spans_end") == []
        await assert_exactly_one_terminal_state(e2e.store, ids)
    finally:
        await proxy.close()


async def test_a_task_blocking_the_event_loop_past_the_lease_costs_its_neighbours_nothing(e2e: E2E) -> None:
    """Issue 9 §6: one task blocks its worker's event loop for 5 s (lease 1.5 s) while 5 others
    run beside it. Leases are renewed from the worker's own renewal thread, so no lease lapses:
    all six complete once, none re-queued (stall count 0), and the worker names the task that
    blocked the loop and for how long."""
    worker = e2e.platform.worker(WORKER_CONCURRENT_TASKS="6", WORKER_LEASE_SECONDS="1.5")
    e2e.platform.scheduler()
    healthy = [o.id for o in await e2e.store.submit_many(
        [e2e.client.build("nap", {"seconds": 3.0}) for _ in range(5)])]
    await wait_until(lambda: len(e2e.platform.runs()) == len(healthy), 15)
    blocker = (await e2e.client.submit("blocks_loop", {"seconds": 5.0})).id
    ids = [*healthy, blocker]
    tasks = await e2e.wait_terminal(ids, 30)
    assert [t.status for t in tasks] == [TaskStatus.COMPLETED] * 6, [(t.status, t.errors) for t in tasks]
    assert [t.stall_count for t in tasks] == [0] * 6
    runs = Counter(task_id for task_id, _ in e2e.platform.runs())
    assert runs == Counter(ids)  # each ran once
    log = e2e.platform.log_of(worker)
    assert f"the event loop is blocked by task {blocker} (blocks_loop v1)" in log
    blocked = re.search(rf"task {blocker} \(blocks_loop v1\) blocked the event loop for ([\d.]+) s", log)
    assert blocked and 4.0 <= float(blocked.group(1)) <= 6.5, log
    await assert_exactly_one_terminal_state(e2e.store, ids)


async def test_a_task_hung_in_a_blocked_event_loop_is_stalled_by_its_max_heartbeat_interval(e2e: E2E) -> None:
    """The renewal thread keeps a blocked worker's leases, not its tasks' heartbeats: a task that
    blocks the loop past its ``max_heartbeat_interval`` (1 s) without a heartbeat is hung, and the
    scheduler ends it ``stalled`` while it still blocks; its late result is rejected."""
    worker = e2e.platform.worker(WORKER_LEASE_SECONDS="1.5")
    e2e.platform.scheduler()
    hung = (await e2e.client.submit("hangs_the_loop", {"seconds": 6.0})).id
    (task,) = await e2e.wait_terminal([hung], 20)
    assert task.status is TaskStatus.STALLED and task.errors[-1].exception_type == "HeartbeatTimeout"
    assert task.stall_count == 0  # hung, not a lost lease
    await wait_until(lambda: f"late write for task {hung} rejected" in e2e.platform.log_of(worker)
                     or f"of task {hung} lost" in e2e.platform.log_of(worker), 15)
    (after,) = await e2e.store.get_tasks([hung])
    assert after.status is TaskStatus.STALLED and after.result is None
    await assert_exactly_one_terminal_state(e2e.store, [hung])
