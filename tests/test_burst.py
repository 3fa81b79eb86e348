"""Burst workers (``jobbers_worker --burst``), as a crontab runs them: real worker processes on a
real Redis, no scheduler beside them."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import signal
import subprocess
import time
from collections import Counter

from jobbers.models.task import TaskStatus
from jobbers.state.store import NewTask
from tests.e2e import E2E, wait_until
from tests.helpers import assert_exactly_one_terminal_state


def start_burst(e2e: E2E, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """A burst worker without the platform's WORKER_TTL=0 (unless ``env`` sets it): the default applies."""
    unset = () if "WORKER_TTL" in env else ("WORKER_TTL",)
    return e2e.platform.start("jobbers_worker", *args, "tests.e2e_tasks", unset=unset, **env)


def finished(e2e: E2E, proc: subprocess.Popen[bytes], seconds: float = 120) -> int:
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the burst worker did not exit:\n" + e2e.platform.log_of(proc)[-3000:]) from None


async def submit(e2e: E2E, name: str, count: int, **params: object) -> list[str]:
    tasks = [NewTask(name=name, params=dict(params)) for _ in range(count)]
    return [o.id for o in await e2e.store.submit_many(tasks)]


def log_time(line: str) -> float:
    stamp = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})", line)
    assert stamp, line
    return time.mktime(time.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S")) + int(stamp.group(2)) / 1000


async def test_a_burst_worker_drains_1000_tasks_and_exits_0(e2e: E2E) -> None:
    ids = await submit(e2e, "noop", 1000)

    proc = start_burst(e2e, "--burst")

    assert finished(e2e, proc) == 0, e2e.platform.log_of(proc)
    # WORKER_TTL's default (50) is not counted by a burst run: it drained all 1,000.
    assert await assert_exactly_one_terminal_state(e2e.store, ids) == {"completed": 1000}
    assert "queues drained after 1000 tasks" in e2e.platform.log_of(proc)


async def test_a_burst_worker_on_empty_queues_exits_at_once(e2e: E2E) -> None:
    proc = start_burst(e2e, WORKER_BURST="1")

    assert finished(e2e, proc, 60) == 0
    lines = e2e.platform.log_of(proc).splitlines()
    started = next(line for line in lines if " started, role=" in line)
    stopped = next(line for line in lines if " stopped after 0 tasks" in line)
    assert any("queues drained after 0 tasks" in line for line in lines)
    assert log_time(stopped) - log_time(started) < 1.0  # no wait for a horizon or a poll interval


async def test_two_burst_workers_at_once_never_run_a_task_twice(e2e: E2E) -> None:
    ids = await submit(e2e, "span", 500, seconds=0.02)

    procs = [start_burst(e2e, "--burst") for _ in range(2)]

    assert [finished(e2e, p) for p in procs] == [0, 0]
    runs = [line.split() for line in e2e.platform.run_log.read_text().splitlines()]
    per_task = Counter(task_id for task_id, *_ in runs)
    assert set(per_task) == set(ids) and set(per_task.values()) == {1}  # once each: never twice at once
    assert {pid for _, _, pid, _, _ in runs} == {str(p.pid) for p in procs}  # both did work, side by side
    first_end = min(max(float(end) for _, _, pid, _, end in runs if pid == str(p.pid)) for p in procs)
    last_start = max(min(float(start) for _, _, pid, start, _ in runs if pid == str(p.pid)) for p in procs)
    assert last_start < first_end  # their runs overlapped in time
    assert await assert_exactly_one_terminal_state(e2e.store, ids) == {"completed": 500}


async def test_a_burst_worker_runs_retries_and_tasks_that_come_due_while_it_runs(e2e: E2E) -> None:
    (flaky,) = await submit(e2e, "flaky", 1)  # 2 retries, 0.1 s apart
    now = dt.datetime.now(dt.UTC)
    soon = (await e2e.client.submit("noop", run_at=now + dt.timedelta(seconds=1.5))).id
    later = (await e2e.client.submit("noop", run_at=now + dt.timedelta(minutes=5))).id

    proc = start_burst(e2e, "--burst")

    assert finished(e2e, proc) == 0
    flaky_task, soon_task, later_task = await e2e.store.get_tasks([flaky, soon, later])
    assert flaky_task.status is TaskStatus.FAILED and flaky_task.retry_attempt == 2
    assert [label for task_id, label in e2e.platform.runs() if task_id == flaky] == ["flaky"] * 3
    assert soon_task.status is TaskStatus.COMPLETED
    assert later_task.status is TaskStatus.SCHEDULED  # due past the horizon: left for the next run


async def test_max_seconds_stops_claiming_lets_running_tasks_finish_and_exits_0(e2e: E2E) -> None:
    ids = await submit(e2e, "nap", 100, seconds=0.3)

    started = time.monotonic()
    proc = start_burst(e2e, "--burst", "--max-seconds", "1", WORKER_CONCURRENT_TASKS="2")

    assert finished(e2e, proc) == 0
    assert time.monotonic() - started < 30
    tasks = await e2e.store.get_tasks(ids)
    counts = Counter(t.status for t in tasks)
    assert counts[TaskStatus.COMPLETED] >= 2 and counts[TaskStatus.SUBMITTED] >= 50, counts
    assert set(counts) == {TaskStatus.COMPLETED, TaskStatus.SUBMITTED}  # nothing cut short or lost
    assert "--max-seconds reached" in e2e.platform.log_of(proc)


async def test_a_worker_ttl_that_is_set_still_stops_a_burst_worker_early(e2e: E2E) -> None:
    ids = await submit(e2e, "noop", 30)

    proc = start_burst(e2e, "--burst", WORKER_TTL="10")

    assert finished(e2e, proc) == 0
    counts = Counter(t.status for t in await e2e.store.get_tasks(ids))
    assert counts == {TaskStatus.COMPLETED: 10, TaskStatus.SUBMITTED: 20}


async def test_a_sigkilled_burst_run_loses_nothing_the_next_run_recovers_its_tasks(e2e: E2E) -> None:
    ids = await submit(e2e, "nap", 12, seconds=1.0)
    first = start_burst(e2e, "--burst", WORKER_CONCURRENT_TASKS="4")
    await wait_until(lambda: len(e2e.platform.runs()) >= 4, 60)

    first.send_signal(signal.SIGKILL)  # as cron's `timeout -s KILL` would
    first.wait(30)
    held = [t.id for t in await e2e.store.get_tasks(ids) if t.status is TaskStatus.STARTED]
    assert held, "the killed run held no task"
    await asyncio.sleep(float(e2e.platform.env["WORKER_LEASE_SECONDS"]) + 0.3)  # its leases expire

    second = start_burst(e2e, "--burst", WORKER_CONCURRENT_TASKS="4")

    assert finished(e2e, second) == 0
    assert await assert_exactly_one_terminal_state(e2e.store, ids) == {"completed": 12}
    recovered = await e2e.store.get_tasks(held)
    assert all(t.stall_count == 1 and t.errors[-1].exception_type == "LeaseExpired" for t in recovered)
    assert "burst sweep recovered expired leases" in e2e.platform.log_of(second)
