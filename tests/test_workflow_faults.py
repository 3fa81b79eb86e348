"""Fault tests of workflow runs: a worker SIGKILLed after every step of a 200-node run, and of a
run with retries, an error edge and a dynamic fan-out.

Each worker started dies at one step of its work (``JOBBERS_TEST_FAULT=kill_at_step:<n>``, n
cycling 1, 2, 3: right after a claim, after running its tasks but before writing their outcomes,
right after writing them; and, for the second run, up to 5, as a fan-out's write brings two more:
just before and just after it), so the run only advances through crashes and lease recoveries,
and parents run again after their outcome was lost. The state scripts' transitions, followed
live, show every node made ready once and ended once.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import pytest

from jobbers.models.task import TaskStatus
from jobbers.models.workflow import WorkflowStatus
from jobbers.state.transitions import Transition, TransitionFeed
from jobbers.workflows import Edge, Step, Workflow, chain, group, signature
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


async def run_through_crashes(
    e2e: E2E, run: Workflow, name: str, steps: int = 3
) -> tuple[str, Counter[int], list[Transition]]:
    """Submit ``run`` and start worker after worker, each dying at step 1, 2 ... ``steps``, 1 ...
    of its work, until the run ends; returns its id, the kills by step and every transition
    followed live."""
    transitions: list[Transition] = []
    e2e.platform.scheduler(**FAST)  # recovers the dead workers' leases, promotes retries
    async with TransitionFeed(e2e.store) as feed:
        await asyncio.wait_for(feed.subscribed.wait(), 10)

        async def follow() -> None:
            while True:
                transitions.extend(await feed.next_batch())

        follower = asyncio.create_task(follow())
        submitted = await e2e.client.submit_workflow(run, name=name)

        async def ended() -> bool:
            found = await e2e.client.get_workflow(submitted.id)
            return found is not None and found.status is not WorkflowStatus.RUNNING

        kills: Counter[int] = Counter()
        workers = 0
        while not await ended():
            step = workers % steps + 1
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
    return submitted.id, kills, transitions


def assert_made_once_and_ended_once(transitions: list[Transition], ids: list[str]) -> None:
    """Every task of ``ids`` was made (left unsubmitted) once and reached a terminal status once."""
    made = Counter(t.task_id for t in transitions if t.old is TaskStatus.UNSUBMITTED)
    ends = Counter(t.task_id for t in transitions if t.new.is_terminal)
    assert made == Counter(ids) and ends == Counter(ids)


@pytest.mark.timeout(600)
async def test_a_worker_killed_at_every_step_runs_each_node_to_one_end_and_makes_each_once(e2e: E2E) -> None:
    run_id, kills, transitions = await run_through_crashes(e2e, lattice(), "crash-at-every-step")

    done = await e2e.client.get_workflow(run_id)
    assert done is not None and done.status is WorkflowStatus.COMPLETED and len(done.nodes) == 200
    ids = [n.task_id for n in done.nodes]
    assert {n.status for n in done.nodes} == {TaskStatus.COMPLETED}
    assert await assert_exactly_one_terminal_state(e2e.store, ids) == {"completed": 200}
    # Every kind of step was followed by a kill, again and again.
    assert kills[1] >= LAYERS and kills[2] >= LAYERS and kills[3] >= LAYERS, kills
    assert_made_once_and_ended_once(transitions, ids)  # each node made ready once, ended once
    runs = Counter(task_id for task_id, label in e2e.platform.runs() if label == "wf_step")
    assert set(runs) == set(ids)
    assert sum(1 for n in runs.values() if n > 1) >= LAYERS  # parents ran again after a lost outcome
    end = await e2e.store.get_task(next(n.task_id for n in done.nodes if n.node == "end"))
    last_layer = sorted(f"n{LAYERS - 1}-{j}" for j in range(WIDTH))
    assert end is not None and end.result == {"node": "end", "parents": last_layer}


def mixed() -> Workflow:
    """Retries, a failure taking its error edge, and a dynamic fan-out, after one root."""

    def step(node: str) -> Workflow:
        return signature("wf_step", node=node).named(node)

    return step("root").then(
        signature("wf_flaky", fail_times=2).named("flaky").then(step("after_flaky")),
        signature("wf_until_fixed", marker="/nonexistent/never")
        .named("bad")
        .then(
            step("after_bad"), on_error=signature("wf_step", node="handler").named("handler").errors("err")
        ),
        signature("wf_fan", pages=5).named("fan").then(signature("wf_sum").results("parts").named("total")),
    )


@pytest.mark.timeout(600)
async def test_retries_error_edges_and_a_fan_out_settle_once_through_a_kill_at_every_step(e2e: E2E) -> None:
    """The same crashes through the other scripts that settle edges: a retried node (written
    retries, promoted by the scheduler), a failure taking its error edge and cancelling what
    follows it, and a fan-out (its new nodes and completion written alone, with a kill just
    before and just after that write)."""
    # Up to five steps per worker: tasks claimed together take their steps side by side (a
    # fan-out's write beside a batch's), so a worker must live through a few for the run to advance.
    run_id, kills, transitions = await run_through_crashes(e2e, mixed(), "mixed-crashes", steps=5)

    done = await e2e.client.get_workflow(run_id)
    status = {n.node: n.status for n in done.nodes}
    pages = [f"fan.wf_page{'' if i == 0 else f'-{i + 1}'}" for i in range(5)]
    assert status == {
        "root": TaskStatus.COMPLETED, "flaky": TaskStatus.COMPLETED, "after_flaky": TaskStatus.COMPLETED,
        "bad": TaskStatus.FAILED, "after_bad": TaskStatus.CANCELLED, "handler": TaskStatus.COMPLETED,
        "fan": TaskStatus.COMPLETED, "total": TaskStatus.COMPLETED, "fan.wf_sum": TaskStatus.COMPLETED,
        **dict.fromkeys(pages, TaskStatus.COMPLETED),
    }  # fmt: skip
    ids = [n.task_id for n in done.nodes]
    assert_made_once_and_ended_once(transitions, ids)
    await assert_exactly_one_terminal_state(e2e.store, ids)
    tasks = {n.node: await e2e.store.get_task(n.task_id) for n in done.nodes}
    assert tasks["flaky"].result == 2  # type: ignore[union-attr]  # two written retries, then done
    assert tasks["handler"].result == {"node": "handler", "parents": [], "failed": "bad"}  # type: ignore[union-attr]
    assert tasks["total"].result == 100  # type: ignore[union-attr]  # the collector's sum, once
    assert all(kills[step] >= 1 for step in range(1, 6)), kills


def across(queues: list[str]) -> Workflow:
    """A root, eight nodes after it spread over the other queues, a collector back in the first,
    then a chain through every queue twice: each step crosses queues."""
    q0, q1, q2 = queues

    def step(node: str, queue: str) -> Workflow:
        return signature("wf_step", node=node, queue=queue).named(node)

    spread = [step(f"s{i}", (q1, q2)[i % 2]) for i in range(8)]
    tail = [step(f"t{i}", queues[(i + 1) % 3]) for i in range(6)]
    return chain(step("root", q0), group(*spread), step("collect", q0).results("parents"), *tail)


@pytest.mark.timeout(600)
async def test_a_scheduler_killed_after_every_relay_of_a_run_across_queues_delivers_each_effect_once(
    e2e: E2E,
) -> None:
    await relay_crashes(e2e, ["fx-a", "fx-b", "fx-c"])


async def relay_crashes(e2e: E2E, queues: list[str]) -> None:
    """Schedulers die right after delivering outbox entries and before deleting them
    (``kill_relay_at:<n>``, n = 1, 2, 1 ...: one dies at its first relay, redelivering what the
    last one left; the next gets past that one and dies at its second), so every effect across
    queues is delivered twice or more: each node is still made once and ended once (its events in
    the event log, written by the scripts that change its status, show one submit and one end)."""
    from jobbers.models.event import EventKind
    from jobbers.models.queue_config import QueueConfig
    from jobbers.state.events import EventLog

    for q in queues:
        await e2e.config.save_queue(QueueConfig(name=q))
    e2e.platform.worker(**FAST)
    run = await e2e.client.submit_workflow(across(queues), name="relay-crashes")

    async def ended() -> bool:
        found = await e2e.client.get_workflow(run.id)
        return found is not None and found.status is not WorkflowStatus.RUNNING

    kills = schedulers = 0
    while not await ended():
        schedulers += 1
        fault = f"kill_relay_at:{(schedulers - 1) % 2 + 1}"
        scheduler = e2e.platform.scheduler(JOBBERS_TEST_FAULT=fault, **FAST)
        await wait_until(lambda s=scheduler: s.poll() is not None or ended(), 60)  # type: ignore[misc]
        kills += scheduler.poll() == -signal.SIGKILL
        assert schedulers < 200, "the run does not advance"
    # The last one may have died before deleting what it delivered: a scheduler that lives
    # delivers it again (changing nothing) and empties the outboxes.
    e2e.platform.scheduler(**FAST)

    async def emptied() -> bool:
        sizes = [await e2e.store.redis.hlen(e2e.store.keys.space(q).wf_outbox) for q in queues]  # type: ignore[misc]
        return sizes == [0, 0, 0]

    await wait_until(emptied, 30)

    done = await e2e.client.get_workflow(run.id)
    assert done is not None and done.status is WorkflowStatus.COMPLETED and len(done.nodes) == 16
    ids = [n.task_id for n in done.nodes]
    log = EventLog(e2e.store)
    for n in done.nodes:
        kinds = Counter(e.type for e in await log.task_events(n.task_id) or [])
        assert (kinds[EventKind.SUBMITTED], kinds[EventKind.COMPLETED]) == (1, 1), (n.node, kinds)
    await assert_exactly_one_terminal_state(e2e.store, ids)
    runs = Counter(task_id for task_id, label in e2e.platform.runs() if label == "wf_step")
    assert runs == Counter(ids)  # each node ran once: no effect was applied twice
    collect = await e2e.store.get_task(next(n.task_id for n in done.nodes if n.node == "collect"))
    assert collect is not None and collect.result == {
        "node": "collect",
        "parents": [f"s{i}" for i in range(8)],
    }
    assert kills >= 8, kills  # every crossing was delivered, then delivered again after a kill
