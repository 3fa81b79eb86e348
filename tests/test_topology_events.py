"""The event log and progress on a Redis Cluster (3 masters, each with a replica): the one-Redis
tests run here unchanged (their fixtures replaced by ones on the cluster), and the audit log of
queues on three shards is merged in time order, paged, summarised and trimmed.
Slow (a real topology): ``python -m pytest -m topology``."""

from __future__ import annotations

import httpx
import pytest

from jobbers.models.event import EventKind
from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import TaskStatus
from jobbers.state.events import AuditQuery, EventLog
from jobbers.state.store import NewTask, Outcome, TaskStore
from tests import test_events as ev
from tests import test_events_e2e, test_manager_audit, test_progress
from tests.manager_support import api, registered
from tests.on_cluster import e2e, manager_settings, store
from tests.test_topology_queue_control import _one_queue_per_master
from tests.topology import Cluster

pytestmark = pytest.mark.topology

__all__ = ["api", "e2e", "manager_settings", "registered", "store"]  # fixtures, used by name


test_a_task_run_to_completion_has_its_events_in_order_with_worker_and_attempt = (
    ev.test_a_task_run_to_completion_has_its_events_in_order_with_worker_and_attempt
)
test_a_retry_a_failure_and_a_dead_letter_resubmit_say_what_happened = (
    ev.test_a_retry_a_failure_and_a_dead_letter_resubmit_say_what_happened
)
test_cancels_say_who_asked_and_a_running_task_gets_a_cancel_request = (
    ev.test_cancels_say_who_asked_and_a_running_task_gets_a_cancel_request
)
test_a_dead_workers_task_is_recovered_then_stalled = ev.test_a_dead_workers_task_is_recovered_then_stalled
test_an_unknown_task_has_no_events_and_a_pruned_one_loses_them = (
    ev.test_an_unknown_task_has_no_events_and_a_pruned_one_loses_them
)
test_the_audit_log_merges_queues_in_time_order_and_its_cursor_loses_nothing = (
    ev.test_the_audit_log_merges_queues_in_time_order_and_its_cursor_loses_nothing
)
test_a_window_bounds_the_audit_log_and_its_summary = ev.test_a_window_bounds_the_audit_log_and_its_summary
test_a_report_is_stored_shown_and_logged_at_most_every_few_seconds = (
    test_progress.test_a_report_is_stored_shown_and_logged_at_most_every_few_seconds
)
test_the_audit_log_filters_and_pages = test_manager_audit.test_the_audit_log_filters_and_pages
test_the_summary_counts_by_type_and_task_name = test_manager_audit.test_the_summary_counts_by_type_and_task_name
test_a_real_worker_writes_every_event_and_the_cleaner_trims_the_audit_log = (
    test_events_e2e.test_a_real_worker_writes_every_event_and_the_cleaner_trims_the_audit_log
)
test_a_real_worker_writes_progress_within_about_a_second = (
    test_progress.test_a_real_worker_writes_progress_within_about_a_second
)


async def test_the_audit_log_of_queues_on_three_shards_is_one_log(
    store: TaskStore, cluster: Cluster, key_prefix: str, api: httpx.AsyncClient
) -> None:
    queues = _one_queue_per_master(cluster, key_prefix)
    masters = {cluster.master_of(store.keys.space(q).audit).port for q in queues}
    assert len(masters) == 3  # each queue's audit stream lies on another shard
    ids = {q: [(await store.submit(NewTask(name=f"t-{q}", queue=q, correlation_id="s"))).id for _ in range(4)]
           for q in queues}
    for q in queues:
        for claimed in (await store.claim("w", 30, 2, [QueueConfig(name=q)])).tasks:
            await store.finish([Outcome(claimed.id, claimed.token, TaskStatus.COMPLETED)])
    log = EventLog(store)
    seen, cursor = [], None
    while True:
        page = await log.page(AuditQuery(correlation_id="s"), 5, cursor)
        seen += page.events
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 3 * (4 + 2 + 2)
    assert {e.queue for e in seen} == set(queues)
    order = [(int(e.event_id.split("-")[0]), int(e.event_id.split("-")[1]), e.queue) for e in seen]
    assert order == sorted(order)
    summary = (await api.get("/audit-log/summary", params={"correlation_id": "s"})).json()
    assert summary["total"] == 24 and summary["by_type"] == {"completed": 6, "started": 6, "submitted": 12}
    assert {r["task_name"] for r in summary["by_task_name"]} == {f"t-{q}" for q in queues}
    events = (await api.get(f"/tasks/{ids[queues[2]][0]}/events")).json()["events"]
    assert [e["type"] for e in events] == [EventKind.SUBMITTED, EventKind.STARTED, EventKind.COMPLETED]
    assert await log.trim(await store.redis_time_ms() + 1) == 24
    assert (await log.page(AuditQuery(), 10, None)).events == []
