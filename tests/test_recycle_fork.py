"""WORKER_RECYCLE=fork: one parent forks a fresh worker for each WORKER_TTL tasks (real processes)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from jobbers.models.task import TaskStatus
from tests.e2e import E2E, wait_until
from tests.helpers import assert_exactly_one_terminal_state


def forked_worker(e2e: E2E, ttl: int, **env: str) -> subprocess.Popen[bytes]:
    return e2e.platform.start(
        "jobbers_worker", "--recycle", "fork", "tests.e2e_tasks", WORKER_TTL=str(ttl), **env
    )


def runs_with_pids(run_log: Path) -> list[tuple[str, str, int]]:
    """(task id, label, pid of the worker process that ran it) for every execution."""
    if not run_log.exists():
        return []
    return [
        (i, label, int(pid)) for i, label, pid in (line.split() for line in run_log.read_text().splitlines())
    ]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_forked_lifetimes_run_every_task_exactly_once(e2e: E2E) -> None:
    parent = forked_worker(e2e, ttl=5)
    ids = [o.id for o in await e2e.store.submit_many([e2e.client.build("noop") for _ in range(40)])]
    tasks = await e2e.wait_terminal(ids, 60)
    assert {t.status for t in tasks} == {TaskStatus.COMPLETED}
    runs = runs_with_pids(e2e.platform.run_log)
    assert Counter(task_id for task_id, _, _ in runs) == dict.fromkeys(ids, 1)
    per_process = Counter(pid for _, _, pid in runs)
    assert len(per_process) >= 8 and max(per_process.values()) <= 5  # a fresh process per 5 tasks
    assert parent.pid not in per_process and parent.poll() is None  # the parent runs none, and stays
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(10) == 0
    await assert_exactly_one_terminal_state(e2e.store, ids)


async def test_sigterm_to_the_parent_stops_its_worker_promptly_and_loses_no_task(e2e: E2E) -> None:
    parent = forked_worker(e2e, ttl=4)
    ids = [o.id for o in await e2e.store.submit_many(
        [e2e.client.build("resubmit_policy", {"seconds": 0.3}) for _ in range(12)])]  # fmt: skip
    await wait_until(lambda: len(e2e.platform.runs()) >= 6, 30)  # into its second lifetime
    pids = {pid for _, _, pid in runs_with_pids(e2e.platform.run_log)}
    started = time.monotonic()
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(10) == 0
    assert time.monotonic() - started < 5
    assert not any(alive(pid) for pid in pids)  # no worker outlives its parent
    log = e2e.platform.log_of(parent)
    assert "shutting down" in log and "Traceback" not in log
    # Whatever was running went back to its queue (on_shutdown=resubmit): a plain worker ends it.
    e2e.platform.worker()
    tasks = await e2e.wait_terminal(ids, 30)
    assert {t.status for t in tasks} == {TaskStatus.COMPLETED}
    await assert_exactly_one_terminal_state(e2e.store, ids)


async def test_a_killed_worker_is_replaced_and_its_tasks_are_recovered(e2e: E2E) -> None:
    parent = forked_worker(e2e, ttl=50)
    ids = [o.id for o in await e2e.store.submit_many(
        [e2e.client.build("nap_once", {"seconds": 30}) for _ in range(3)])]  # fmt: skip
    await wait_until(lambda: len(e2e.platform.runs()) == 3, 30)
    (victim,) = {pid for _, _, pid in runs_with_pids(e2e.platform.run_log)}
    os.kill(victim, signal.SIGKILL)
    e2e.platform.scheduler()  # recovers the expired leases
    tasks = await e2e.wait_terminal(ids, 30)
    assert {t.status for t in tasks} == {TaskStatus.COMPLETED} and all(t.stall_count == 1 for t in tasks)
    rerun_by = {pid for _, _, pid in runs_with_pids(e2e.platform.run_log)} - {victim}
    assert len(rerun_by) == 1 and parent.pid not in rerun_by  # its replacement, forked by the parent
    assert parent.poll() is None
    await wait_until(
        lambda: f"worker process {victim} was killed by SIGKILL" in e2e.platform.log_of(parent), 5
    )
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(10) == 0
    await assert_exactly_one_terminal_state(e2e.store, ids)


async def test_a_worker_whose_settings_are_wrong_is_not_forked_again_and_again(e2e: E2E) -> None:
    parent = forked_worker(e2e, ttl=5, REDIS_URL="nonsense://x")
    assert await asyncio.to_thread(parent.wait, 15) == 2
    assert "is not a Redis URL" in e2e.platform.log_of(parent)


async def test_with_worker_ttl_0_the_fork_setting_runs_the_worker_in_its_own_process(e2e: E2E) -> None:
    worker = forked_worker(e2e, ttl=0)
    ids = [o.id for o in await e2e.store.submit_many([e2e.client.build("noop") for _ in range(5)])]
    await e2e.wait_terminal(ids)
    assert {pid for _, _, pid in runs_with_pids(e2e.platform.run_log)} == {worker.pid}
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(10) == 0
