"""Queue control on a Redis Cluster (3 masters, each with a replica): priorities, pause, resume and
clear, concurrency keys (block and discard), a role's queue order and recurring entries, with the
queues of a test spread over the shards. The one-Redis tests of each feature run here unchanged
(their fixtures replaced by ones on the cluster), and the tests below put one queue on each master.
Slow (a real topology): ``python -m pytest -m topology``."""

from __future__ import annotations

import dataclasses

import pytest

from jobbers.config_store import ConfigStore
from jobbers.models.queue_config import QueueConfig
from jobbers.models.recurring import RecurringEntry
from jobbers.models.task import TaskStatus
from jobbers.recurring_entries import recurring_task_id
from jobbers.scheduler.recurring import RecurringFirer
from jobbers.settings import Settings
from jobbers.state.keys import Keys
from jobbers.state.store import NewTask, Outcome, TaskStore
from tests import test_queue_control, test_queue_control_e2e, test_recurring, test_worker
from tests.manager_support import api, registered
from tests.on_cluster import e2e, manager_settings, store
from tests.test_queue_control import _keyed
from tests.test_recurring import sql
from tests.test_worker import client, config, run_worker
from tests.topology import Cluster

pytestmark = pytest.mark.topology

# fixtures, used by name
__all__ = ["api", "client", "config", "e2e", "manager_settings", "registered", "run_worker", "sql", "store"]


# -- the fixtures of the one-Redis tests, on the cluster ---------------------------------------


@pytest.fixture
def settings(cluster: Cluster, key_prefix: str, sqlite_url: str) -> Settings:
    """In-process workers (``run_worker``) on the cluster, with the intervals of tests/test_worker.py."""
    return Settings(redis_url=cluster.url, redis_key_prefix=key_prefix, sql_path=sqlite_url,
                    worker_ttl=0, worker_lease_seconds=0.6, worker_refresh_interval=0.1,
                    worker_shutdown_grace=2, scheduler_poll_interval=0.1, scheduler_batch_size=50)  # fmt: skip


# -- the one-Redis tests, unchanged -------------------------------------------------------------

qc = test_queue_control
test_higher_priority_is_claimed_first_and_equal_priorities_stay_fifo = (
    qc.test_higher_priority_is_claimed_first_and_equal_priorities_stay_fifo
)
test_retries_schedules_recovery_and_resubmits_keep_their_priority = (
    qc.test_retries_schedules_recovery_and_resubmits_keep_their_priority
)
test_the_queue_order_given_to_a_claim_wins_over_priority = qc.test_the_queue_order_given_to_a_claim_wins_over_priority
test_a_paused_queue_is_skipped_and_the_others_still_served = (
    qc.test_a_paused_queue_is_skipped_and_the_others_still_served
)
test_priority_through_the_api_and_the_client = qc.test_priority_through_the_api_and_the_client
test_pause_resume_clear_and_stats_through_the_api = qc.test_pause_resume_clear_and_stats_through_the_api
test_a_queue_with_running_or_retrying_work_and_the_default_queue_are_not_deleted = (
    qc.test_a_queue_with_running_or_retrying_work_and_the_default_queue_are_not_deleted
)
test_blocked_tasks_wait_for_a_slot_and_start_the_moment_one_frees = (
    qc.test_blocked_tasks_wait_for_a_slot_and_start_the_moment_one_frees
)
test_discard_cancels_a_submit_whose_key_is_at_its_limit = qc.test_discard_cancels_a_submit_whose_key_is_at_its_limit
test_a_slot_lapses_after_its_duration_and_lease_recovery_frees_it = (
    qc.test_a_slot_lapses_after_its_duration_and_lease_recovery_frees_it
)
test_clear_cancels_blocked_tasks_too = qc.test_clear_cancels_blocked_tasks_too
test_concurrency_keys_through_the_api = qc.test_concurrency_keys_through_the_api
test_random_finishes_retries_and_crashes_never_break_a_keys_limit_or_lose_a_task = (
    qc.test_random_finishes_retries_and_crashes_never_break_a_keys_limit_or_lose_a_task
)
test_an_ordered_claim_fills_from_the_first_queue_before_the_next = (
    test_worker.test_an_ordered_claim_fills_from_the_first_queue_before_the_next
)
test_a_role_drains_its_queues_in_its_order = test_worker.test_a_role_drains_its_queues_in_its_order
test_two_firers_submit_each_fire_time_once_with_its_key_time_and_priority = (
    test_recurring.test_two_firers_submit_each_fire_time_once_with_its_key_time_and_priority
)
test_a_paused_entry_does_not_fire_and_resumes_from_its_next_time = (
    test_recurring.test_a_paused_entry_does_not_fire_and_resumes_from_its_next_time
)
# Real worker and scheduler processes.
test_a_paused_queue_finishes_running_work_promotes_and_resumes_at_once = (
    test_queue_control_e2e.test_a_paused_queue_finishes_running_work_promotes_and_resumes_at_once
)
test_a_concurrency_key_runs_one_at_a_time_and_outlives_a_sigkilled_holder = (
    test_queue_control_e2e.test_a_concurrency_key_runs_one_at_a_time_and_outlives_a_sigkilled_holder
)
test_declared_entry_fires_through_two_schedulers_one_killed_mid_fire_each_time_once = (
    test_recurring.test_declared_entry_fires_through_two_schedulers_one_killed_mid_fire_each_time_once
)


# -- one queue on each master -------------------------------------------------------------------


def _one_queue_per_master(cluster: Cluster, prefix: str) -> list[str]:
    """Three queue names (q0, q1 ...), each served by another master."""
    keys = Keys(prefix)
    by_master: dict[int, str] = {}
    i = 0
    while len(by_master) < len(cluster.masters()):
        by_master.setdefault(cluster.master_of(keys.queue(f"q{i}").ready).port, f"q{i}")
        i += 1
    return list(by_master.values())


async def test_priorities_pause_clear_and_role_order_on_queues_of_three_shards(
    store: TaskStore, cluster: Cluster, key_prefix: str
) -> None:
    a, b, c = _one_queue_per_master(cluster, key_prefix)
    tasks = [NewTask(name=f"{q}{p:+d}", queue=q, priority=p) for q in (a, b, c) for p in (0, 5, -5)]
    await store.submit_many(tasks)
    queues = [QueueConfig(name=q) for q in (a, b, c)]

    first = [t.name for t in (await store.claim("w", 30, 4, queues, in_order=True)).tasks]
    await store.pause_queue(b)
    past_paused = [t.name for t in (await store.claim("w", 30, 5, queues, in_order=True)).tasks]
    cleared = await store.clear_queue(b, f"queue {b} was cleared")
    await store.resume_queue(b)
    after = (await store.claim("w", 30, 5, queues)).tasks
    stats = {s.queue: s for s in await store.queue_stats([a, b, c])}

    # The role's order across shards, each queue's priorities within it.
    assert first == [f"{a}+5", f"{a}+0", f"{a}-5", f"{b}+5"]
    assert past_paused == [f"{c}+5", f"{c}+0", f"{c}-5"]  # b is paused: c's turn, a being empty
    assert cleared == 2 and after == []
    assert (stats[b].depth, stats[b].running, stats[b].paused) == (0, 1, False)
    assert all((stats[q].depth, stats[q].running) == (0, 3) for q in (a, c))


async def test_a_concurrency_key_is_counted_per_queue_on_every_shard(
    store: TaskStore, cluster: Cluster, key_prefix: str
) -> None:
    a, b, c = _one_queue_per_master(cluster, key_prefix)
    blocking = [dataclasses.replace(_keyed(f"{q}{i}"), queue=q) for q in (a, b) for i in range(2)]
    held_ids = [o.id for o in await store.submit_many(blocking)]
    discard = [dataclasses.replace(_keyed(f"{c}{i}", conflict="discard"), queue=c) for i in range(2)]
    kept, dropped = await store.submit_many(discard)

    queues = [QueueConfig(name=q) for q in (a, b, c)]
    running = (await store.claim("w", 30, 10, queues)).tasks
    waiting = await store.get_tasks([held_ids[1], held_ids[3]])
    await store.finish([Outcome(t.id, t.token, TaskStatus.COMPLETED) for t in running if t.queue == a])
    freed = (await store.claim("w", 30, 10, queues)).tasks
    dropped_task = await store.get_task(dropped.id)

    # One holder of "acct:1" per queue at once: the key's slots live in each queue's own shard.
    assert sorted(t.name for t in running) == sorted([f"{a}0", f"{b}0", f"{c}0"])
    assert [t.waiting_for for t in waiting] == ["acct:1", "acct:1"]
    assert [t.name for t in freed] == [f"{a}1"]  # a's slot freed; b's holder still runs
    assert dropped_task is not None and dropped_task.status is TaskStatus.CANCELLED
    assert "acct:1" in (dropped_task.cancel_reason or "") and kept.id in {t.id for t in running}


async def test_a_recurring_entry_fires_into_a_queue_on_another_shard_once(
    store: TaskStore, sql: ConfigStore, cluster: Cluster, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    default_master = cluster.master_of(keys.queue("default").ready).port
    (elsewhere,) = [
        q for q in _one_queue_per_master(cluster, key_prefix)
        if cluster.master_of(keys.queue(q).ready).port != default_master
    ][:1]  # fmt: skip
    await sql.save_queue(QueueConfig(name=elsewhere))
    now = await store.redis_time_ms()
    await sql.save_recurring(
        RecurringEntry(key="far", task_name="noop", queue=elsewhere, priority=3, every_seconds=10,
                       created_at_ms=now - 25_000)  # fmt: skip
    )
    firers = [RecurringFirer(store, sql, refresh=0) for _ in range(2)]

    for firer in firers:
        await firer.fire_due()
    task = await store.get_task(recurring_task_id("far", now - 5_000))
    claimed = (await store.claim("w", 30, 5, [QueueConfig(name=elsewhere)])).tasks

    assert task is not None and (task.queue, task.recurring_key, task.priority) == (elsewhere, "far", 3)
    assert [t.id for t in claimed] == [task.id]  # two firers, one task (the latest missed tick)
