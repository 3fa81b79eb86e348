"""End-to-end: real worker, scheduler and cleaner processes, driven through the Python API."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from jobbers.models.task import TaskStatus
from tests.e2e import E2E, wait_until
from tests.helpers import assert_exactly_one_terminal_state

async def test_processes_run_the_whole_story(e2e: E2E) -> None:
    e2e.platform.worker()
    e2e.platform.scheduler()
    c = e2e.client
    done = await c.submit("noop", {"report_id": 42})
    flaky = await c.submit("flaky")
    later = await c.submit("noop", run_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.5))
    running = await c.submit("nap", {"seconds": 10})
    await e2e.wait_started([running.id])
    assert (await c.cancel(running.id)).outcome == "requested"
    tasks = {t.id: t for t in await e2e.wait_terminal([done.id, flaky.id, later.id, running.id])}
    assert tasks[done.id].status is TaskStatus.COMPLETED
    assert tasks[later.id].status is TaskStatus.COMPLETED and tasks[later.id].run_at is not None
    assert tasks[running.id].status is TaskStatus.CANCELLED
    f = tasks[flaky.id]
    assert (f.status, f.retry_attempt, f.dead_lettered, len(f.errors)) == (TaskStatus.FAILED, 2, True, 3)
    await assert_exactly_one_terminal_state(e2e.store, list(tasks))

    # The cleaner prunes terminal tasks by age but keeps dead letters until --dlq-age.
    await asyncio.sleep(0.05)
    out = e2e.platform.run("jobbers_cleaner", "--completed-task-age", "0")
    counts = json.loads(out.stdout)
    assert counts["pruned_tasks"] == 3 and counts["pruned_dead_letters"] == 0
    assert await e2e.store.get_task(flaky.id) is not None and await e2e.store.get_task(done.id) is None
    out = e2e.platform.run("jobbers_cleaner", "--dlq-age", "0", "--completed-task-age", "0")
    assert json.loads(out.stdout)["pruned_dead_letters"] == 1


async def test_cleaner_stalls_a_hung_task_without_the_task_module(e2e: E2E) -> None:
    worker = e2e.platform.worker()
    hung = await e2e.client.submit("hangs")
    await e2e.wait_started([hung.id])
    await asyncio.sleep(0.5)  # past its max_heartbeat_interval of 0.3 s; the lease is still renewed
    assert (await e2e.client.get(hung.id)).status is TaskStatus.STARTED
    out = e2e.platform.run("jobbers_cleaner")  # no task module, no --stale-time: the task's own interval
    assert json.loads(out.stdout)["stalled"] == 1
    task = await e2e.client.get(hung.id)
    assert task.status is TaskStatus.STALLED and task.errors[-1].exception_type == "HeartbeatTimeout"
    # The worker is told (cancel signal, then lost lease), stops the task, and its write is fenced off.
    await wait_until(lambda: f"late write for task {hung.id} rejected" in e2e.platform.log_of(worker)
                     or f"lease of task {hung.id} lost" in e2e.platform.log_of(worker), 5)
    await assert_exactly_one_terminal_state(e2e.store, [hung.id])
    assert (await e2e.client.get(hung.id)).status is TaskStatus.STALLED


async def test_cleaner_stale_time_stalls_tasks_without_their_own_interval(e2e: E2E) -> None:
    e2e.platform.worker()
    napping = await e2e.client.submit("nap", {"seconds": 10})
    await e2e.wait_started([napping.id])
    await asyncio.sleep(0.4)
    out = e2e.platform.run("jobbers_cleaner", "--stale-time", "0.2")
    assert json.loads(out.stdout)["stalled"] == 1
    assert (await e2e.client.get(napping.id)).status is TaskStatus.STALLED


def test_cleaner_rejects_negative_ages(e2e: E2E) -> None:
    import subprocess

    from tests.processes import script

    result = subprocess.run([script("jobbers_cleaner"), "--dlq-age", "-5"], env=e2e.platform.env,
                            capture_output=True, timeout=30)
    assert result.returncode == 2 and b"must not be negative" in result.stderr


async def test_worker_refuses_a_missing_task_module(e2e: E2E) -> None:
    proc = e2e.platform.start("jobbers_worker", "no.such.module")
    assert proc.wait(30) == 2
    assert "could not import task module" in e2e.platform.log_of(proc)


def test_cleaner_reports_an_unreachable_redis_plainly(e2e: E2E) -> None:
    import subprocess

    from tests.processes import script
    from tests.redis_server import free_port

    env = {**e2e.platform.env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}"}
    result = subprocess.run([script("jobbers_cleaner")], env=env, capture_output=True, timeout=60)
    assert result.returncode == 1 and b"cannot reach Redis" in result.stderr and b"Traceback" not in result.stderr
