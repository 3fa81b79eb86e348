"""Queue control with real worker and scheduler processes: a paused queue starts nothing, its
schedule is still promoted, and a resume is picked up at once."""

from __future__ import annotations

import datetime as dt
import time

from jobbers.models.task import TaskStatus
from tests.e2e import E2E


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
