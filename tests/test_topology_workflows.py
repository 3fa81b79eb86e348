"""Workflow runs on a Redis Cluster (3 masters, each with a replica): the one-Redis state tests of
workflows run here unchanged (their store on the cluster), and a run with one queue on each
master goes through real worker and scheduler processes, its effects across queues (making a
node's task, cancelling it, settling its end) relayed through the outboxes of their spaces.
Slow (a real topology): ``python -m pytest -m topology``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import test_workflows
from tests.e2e import E2E
from tests.on_cluster import e2e, store
from tests.test_topology_queue_control import _one_queue_per_master
from tests.test_workflow_faults import relay_crashes
from tests.test_workflows_e2e import run_across_queues
from tests.topology import Cluster

pytestmark = pytest.mark.topology

__all__ = ["e2e", "store"]  # fixtures, used by name


# -- the one-Redis tests, unchanged -------------------------------------------------------------

wf = test_workflows
test_a_diamond_with_results_and_a_finished_run = wf.test_a_diamond_with_results_and_a_finished_run
test_a_failing_branch_runs_its_error_edge_and_cancels_what_depends_on_it = (
    wf.test_a_failing_branch_runs_its_error_edge_and_cancels_what_depends_on_it
)
test_a_node_resubmitted_from_the_dlq_resumes_the_run_downstream_of_it = (
    wf.test_a_node_resubmitted_from_the_dlq_resumes_the_run_downstream_of_it
)
test_a_fan_out_joins_the_run_with_its_nodes_completion = (
    wf.test_a_fan_out_joins_the_run_with_its_nodes_completion
)
test_cancelling_a_run_mid_way = wf.test_cancelling_a_run_mid_way
# Queues home, q2, q3: on a cluster each its own slot, wherever those land.
test_a_run_across_three_queues_passes_results_and_takes_an_error_edge_through_the_outbox = (
    wf.test_a_run_across_three_queues_passes_results_and_takes_an_error_edge_through_the_outbox
)
test_cancelling_a_run_across_queues_cancels_its_nodes_there = (
    wf.test_cancelling_a_run_across_queues_cancels_its_nodes_there
)
test_a_dead_lettered_node_resubmitted_resumes_its_run_across_queues = (
    wf.test_a_dead_lettered_node_resubmitted_resumes_its_run_across_queues
)
test_a_fan_out_from_a_node_in_another_queue_than_its_runs_fails_the_node = (
    wf.test_a_fan_out_from_a_node_in_another_queue_than_its_runs_fails_the_node
)


# -- one queue on each master -------------------------------------------------------------------


async def test_a_run_with_one_queue_on_each_master_through_real_processes(
    e2e: E2E, cluster: Cluster, key_prefix: str, tmp_path: Path
) -> None:
    queues = _one_queue_per_master(cluster, key_prefix)
    assert len({cluster.master_of(e2e.store.keys.queue(q).ready).port for q in queues}) == 3
    await run_across_queues(e2e, queues, tmp_path)


@pytest.mark.timeout(600)
async def test_schedulers_killed_after_every_relay_across_three_shards_deliver_each_effect_once(
    e2e: E2E, cluster: Cluster, key_prefix: str
) -> None:
    await relay_crashes(e2e, _one_queue_per_master(cluster, key_prefix))
