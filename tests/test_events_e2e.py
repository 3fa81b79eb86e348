"""The event log with real processes: a worker's retries, failure and completion, a scheduler's
promotions, and the cleaner trimming the audit log by age (counted and logged)."""

from __future__ import annotations

import asyncio
import json

from jobbers.models.event import EventKind
from jobbers.state.events import AuditQuery, EventLog
from tests.e2e import E2E


async def test_a_real_worker_writes_every_event_and_the_cleaner_trims_the_audit_log(e2e: E2E) -> None:
    e2e.platform.worker()
    e2e.platform.scheduler()
    log = EventLog(e2e.store)
    done = await e2e.client.submit("noop", correlation_id="e2e-session")
    flaky = await e2e.client.submit("flaky", correlation_id="e2e-session")
    await e2e.wait_terminal([done.id, flaky.id])

    done_events = await log.task_events(done.id)
    assert done_events is not None
    assert [e.type for e in done_events] == [EventKind.SUBMITTED, EventKind.STARTED, EventKind.COMPLETED]
    worker = done_events[1].worker_id
    assert worker and done_events[2].worker_id == worker
    flaky_events = await log.task_events(flaky.id)
    assert flaky_events is not None
    assert [(e.type.value, e.attempt) for e in flaky_events] == [
        ("submitted", 0),
        ("started", 0),
        ("retried", 0),
        ("promoted", 1),
        ("started", 1),
        ("retried", 1),
        ("promoted", 2),
        ("started", 2),
        ("failed", 2),
    ]
    assert flaky_events[2].detail == "ConnectionError: upstream timed out; retry in 100 ms"
    assert flaky_events[-1].detail == "ConnectionError: upstream timed out"
    session = await log.page(AuditQuery(correlation_id="e2e-session"), 100, None)
    assert len(session.events) == 12

    await asyncio.sleep(0.01)
    out = e2e.platform.run("jobbers_cleaner", "--audit-age", "0")
    assert json.loads(out.stdout)["pruned_audit_events"] == 12
    assert b"pruned audit log events older than 0 s: 12" in out.stderr
    assert (await log.page(AuditQuery(), 100, None)).events == []
    assert await log.task_events(flaky.id) == flaky_events  # a task's own events stay with it
