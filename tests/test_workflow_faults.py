"""Fault test of workflow runs: a worker SIGKILLed after every step of a 200-node run.

Each worker started dies at one step of its work (``JOBBERS_TEST_FAULT=kill_at_step:<n>``, n
cycling 1, 2, 3: right after a claim, after running its tasks but before writing their outcomes,
right after writing them), so the run only advances through crashes and lease recoveries, and
parents run again after their outcome was lost. The state scripts' transitions, followed live,
show every node made ready once and ended once.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import pytest

from jobbers.models.task import TaskStatus
from jobbers.models.workflow import WorkflowStatus
from jobbers.state.transitions import Transition, TransitionFeed
from jobbers.workflows import Edge, Step, Workflow
from tests.e2e import E2E, wait_until
from tests.helpers import assert_exactly_one_terminal_state

WIDTH, LAYERS = 33, 6  # a root, 6 layers of 33, a collector: 200 nodes


def lattice() -> Workflow:
    """Each node of a layer waits for two nodes of the layer before it (fan-in with results)."""

    def step(node: str) -> Step:
        return Step(name="wf_step", params={"node": node}, node_id=node, results_param="parents")

    root, end = step("root"), step("end")
    steps, edges = [root], []
    previous = [root]
    for layer in range(LAYERS):
        current = [step(f"n{layer}-{j}") for j in range(WIDTH)]
        for j, s in enumerate(current):
            parents = {previous[j % len(previous)], previous[(j + 1) % len(previous)]}
            edges += [Edge(p, s) for p in parents]
        steps += current
        previous = current
    steps.append(end)
    edges += [Edge(p, end) for p in previous]
    return Workflow(steps, edges, [root], [end])


#: Short leases: a dead worker's tasks are re-queued within a second.
FAST = {"WORKER_LEASE_SECONDS": "0.6", "WORKER_REFRESH_INTERVAL": "0.1", "SCHEDULER_POLL_INTERVAL": "0.1"}


@pytest.mark.timeout(600)
async def test_a_worker_killed_at_every_step_runs_each_node_to_one_end_and_makes_each_once(e2e: E2E) -> None:
    transitions: list[Transition] = []
    e2e.platform.scheduler(**FAST)  # recovers the dead workers' leases
    async with TransitionFeed(e2e.store) as feed:
        await asyncio.wait_for(feed.subscribed.wait(), 10)

        async def follow() -> None:
            while True:
                transitions.extend(await feed.next_batch())

        follower = asyncio.create_task(follow())
        run = await e2e.client.submit_workflow(lattice(), name="crash-at-every-step")
        assert len(run.nodes) == 200

        async def ended() -> bool:
            found = await e2e.client.get_workflow(run.id)
            return found is not None and found.status is not WorkflowStatus.RUNNING

        kills: Counter[int] = Counter()
        workers = 0
        while not await ended():
            step = workers % 3 + 1
            workers += 1
            fault = f"kill_at_step:{step}"
            worker = e2e.platform.worker(JOBBERS_TEST_FAULT=fault, WORKER_CONCURRENT_TASKS="200", **FAST)
            await wait_until(lambda w=worker: w.poll() is not None or ended(), 60)  # type: ignore[misc]
            if worker.poll() == -signal.SIGKILL:
                kills[step] += 1
            assert workers < 400, "the run does not advance"
        await asyncio.sleep(0.5)  # the last transitions reach the follower
        follower.cancel()
        assert feed.dropped == 0 and feed.reconnects == 0

    done = await e2e.client.get_workflow(run.id)
    assert done is not None and done.status is WorkflowStatus.COMPLETED
    ids = [n.task_id for n in done.nodes]
    assert {n.status for n in done.nodes} == {TaskStatus.COMPLETED}
    assert await assert_exactly_one_terminal_state(e2e.store, ids) == {"completed": 200}
    # Every kind of step was followed by a kill, again and again.
    assert kills[1] >= LAYERS and kills[2] >= LAYERS and kills[3] >= LAYERS, kills
    made = Counter(t.task_id for t in transitions if t.old is TaskStatus.UNSUBMITTED)
    ends = Counter(t.task_id for t in transitions if t.new.is_terminal)
    assert made == Counter(ids) and ends == Counter(ids)  # each node made ready once, ended once
    runs = Counter(task_id for task_id, label in e2e.platform.runs() if label == "wf_step")
    assert set(runs) == set(ids)
    assert sum(1 for n in runs.values() if n > 1) >= LAYERS  # parents ran again after a lost outcome
    end = await e2e.store.get_task(next(n.task_id for n in done.nodes if n.node == "end"))
    last_layer = sorted(f"n{LAYERS - 1}-{j}" for j in range(WIDTH))
    assert end is not None and end.result == {"node": "end", "parents": last_layer}
