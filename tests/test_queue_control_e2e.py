"""Queue control with real worker and scheduler processes: a paused queue starts nothing, its
schedule is still promoted, and a resume is picked up at once."""

from __future__ import annotations

import datetime as dt
import itertools
import signal
import time

from jobbers.models.task import TaskStatus
from jobbers.registry import register_task
from tests.e2e import E2E
from tests.e2e_tasks import keyed_nap


async def test_a_paused_queue_finishes_running_work_promotes_and_resumes_at_once(e2e: E2E) -> None:
    e2e.platform.worker()
    e2e.platform.scheduler()
    running = (await e2e.client.submit("nap", {"seconds": 0.6})).id
    await e2e.wait_started([running])

    await e2e.client.pause_queue("default")
    waiting = [(await e2e.client.submit("noop")).id for _ in range(3)]
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.3)
    promoted = (await e2e.client.submit("noop", run_at=soon)).id
    (nap,) = await e2e.wait_terminal([running])
    assert nap.status is TaskStatus.COMPLETED  # running work finishes normally
    await e2e.wait_for([promoted], lambda t: t.status is TaskStatus.SUBMITTED)
    assert {t.status for t in await e2e.store.get_tasks(waiting)} == {TaskStatus.SUBMITTED}
    stats = await e2e.client.queue_stats("default")
    assert stats.paused and stats.depth == 4 and stats.running == 0

    # The idle worker next rechecks in seconds; a resume wakes it at once.
    t0 = time.monotonic()
    await e2e.client.resume_queue("default")
    await e2e.wait_terminal([*waiting, promoted], seconds=10)
    assert time.monotonic() - t0 < 2.5


async def test_a_concurrency_key_runs_one_at_a_time_and_outlives_a_sigkilled_holder(e2e: E2E) -> None:
    # The submitting process knows the task's concurrency key, as the manager does from its task module.
    register_task(
        "keyed_nap", concurrency_key="account:{account_id}", concurrency_limit=1, concurrency_duration=60
    )(keyed_nap)
    first_worker = e2e.platform.worker()
    e2e.platform.scheduler()
    same = [(await e2e.client.submit("keyed_nap", {"account_id": 1, "seconds": 0.3})).id for _ in range(3)]
    other = (await e2e.client.submit("keyed_nap", {"account_id": 2, "seconds": 0.3})).id
    tasks = await e2e.wait_terminal([*same, other])
    assert {t.status for t in tasks} == {TaskStatus.COMPLETED}
    runs = sorted((t.result, t.completed_at.timestamp()) for t in tasks[:3] if t.completed_at)
    for (_, ended), (next_start, _) in itertools.pairwise(runs):
        # Never two at once, and the next starts as soon as the slot frees (the worker's idle
        # recheck is seconds away: the finish itself woke it).
        assert -0.05 <= next_start - ended < 1.0, runs
    assert tasks[3].result < runs[0][1]  # another account's task ran alongside

    holder = (await e2e.client.submit("keyed_nap", {"account_id": 5, "seconds": 20})).id
    await e2e.wait_started([holder])
    waiter = (await e2e.client.submit("keyed_nap", {"account_id": 5, "seconds": 0.1})).id
    shown = await e2e.client.get(waiter)
    assert shown.waiting_for == "account:5"
    first_worker.send_signal(signal.SIGKILL)
    first_worker.wait()
    e2e.platform.worker()
    # Lease recovery frees the dead holder's slot (long before its 60 s concurrency_duration).
    (done,) = await e2e.wait_terminal([waiter], seconds=20)
    assert done.status is TaskStatus.COMPLETED
    again = await e2e.client.get(holder)
    assert again.stall_count == 1 and again.status in {TaskStatus.SUBMITTED, TaskStatus.STARTED}
