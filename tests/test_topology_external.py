"""External tasks and the MCP server on a Redis Cluster (3 masters, each with a replica): the
one-Redis tests run here unchanged (their fixtures replaced by ones on the cluster), and external
tasks of queues on three shards are claimed, recovered and completed.
Slow (a real topology): ``python -m pytest -m topology``."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from jobbers.state.store import TaskStore
from tests import test_external_tasks as ext
from tests import test_mcp
from tests.manager_support import create_queue, submit
from tests.on_cluster import e2e, manager_settings, store
from tests.test_external_tasks import api, claim, status_of
from tests.test_topology_queue_control import _one_queue_per_master
from tests.topology import Cluster

pytestmark = pytest.mark.topology

__all__ = ["api", "e2e", "manager_settings", "store"]  # fixtures, used by name


test_a_worker_claim_never_sees_external_tasks = ext.test_a_worker_claim_never_sees_external_tasks
test_claim_hands_out_oldest_first_under_a_lease = ext.test_claim_hands_out_oldest_first_under_a_lease
test_late_write_with_a_stale_token_is_rejected_after_lease_recovery = (
    ext.test_late_write_with_a_stale_token_is_rejected_after_lease_recovery
)
test_retryable_fail_follows_the_retry_policy_then_the_dlq = (
    ext.test_retryable_fail_follows_the_retry_policy_then_the_dlq
)
test_a_submitted_external_task_is_completed_or_failed_without_a_claim = (
    ext.test_a_submitted_external_task_is_completed_or_failed_without_a_claim
)
test_claim_racing_a_cancel_ends_cancelled_exactly_once = (
    ext.test_claim_racing_a_cancel_ends_cancelled_exactly_once
)
test_a_new_server_resumes_the_session_where_the_killed_one_stopped = (
    test_mcp.test_a_new_server_resumes_the_session_where_the_killed_one_stopped
)


async def test_external_tasks_of_queues_on_three_shards_are_claimed_recovered_and_completed(
    api: httpx.AsyncClient, store: TaskStore, cluster: Cluster, key_prefix: str
) -> None:
    queues = _one_queue_per_master(cluster, key_prefix)
    ids = {}
    for queue in queues:
        await create_queue(api, queue)
        ids[queue] = (await submit(api, "review_pr", params={"pr": 1}, queue=queue))["id"]
    first = {q: (await claim(api, queue=q, lease_seconds=1))[0] for q in queues}
    await asyncio.sleep(1.1)
    recovered = await store.recover_expired_leases()
    assert sorted(recovered.requeued) == sorted(ids.values())
    for queue in queues:
        (again,) = await claim(api, queue=queue)
        late = await api.post(f"/task/{ids[queue]}/complete", json={"token": first[queue]["token"]})
        assert late.status_code == 409
        done = await api.post(f"/task/{ids[queue]}/complete", json={"token": again["token"], "result": queue})
        assert done.status_code == 200, done.text
        assert (await status_of(api, ids[queue]))["result"] == queue
