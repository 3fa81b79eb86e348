"""Workflow runs through real worker processes: dynamic fan-out from a running task, retried
nodes whose successors wait for their final outcome, a dead-lettered node resubmitted over
REST resuming its run, and runs across queues (``run_across_queues``, also run on the cluster by
tests/test_topology_workflows.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from jobbers.models.task import TaskStatus
from jobbers.models.workflow import WorkflowStatus
from jobbers.state.transitions import Transition, TransitionFeed
from jobbers.workflows import chain, group, signature
from tests.e2e import E2E, wait_until
from tests.helpers import assert_exactly_one_terminal_state


async def test_a_running_task_fans_out_and_what_came_after_it_waits_for_the_collector(e2e: E2E) -> None:
    e2e.platform.worker()
    run = await e2e.client.submit_workflow(
        chain(signature("wf_fan", pages=3).named("fan"), signature("wf_sum").results("parts").named("total"))
    )

    async def ended() -> bool:
        found = await e2e.client.get_workflow(run.id)
        return found is not None and found.status is not WorkflowStatus.RUNNING

    await wait_until(ended, 30)
    done = await e2e.client.get_workflow(run.id)
    assert done is not None and done.status is WorkflowStatus.COMPLETED
    by_node = {n.node: n for n in done.nodes}
    assert set(by_node) == {"fan", "total", "fan.wf_page", "fan.wf_page-2", "fan.wf_page-3", "fan.wf_sum"}
    assert by_node["total"].after == ("fan.wf_sum",)
    tasks = {n.node: await e2e.store.get_task(n.task_id) for n in done.nodes}
    assert tasks["fan.wf_sum"].result == 30 and tasks["total"].result == 30  # type: ignore[union-attr]
    assert {t.status for t in tasks.values() if t} == {TaskStatus.COMPLETED}
    await assert_exactly_one_terminal_state(e2e.store, [n.task_id for n in done.nodes])


async def _follow(e2e: E2E) -> tuple[TransitionFeed, list[Transition], asyncio.Task[None]]:
    feed = TransitionFeed(e2e.store)
    await feed.__aenter__()
    await asyncio.wait_for(feed.subscribed.wait(), 10)
    seen: list[Transition] = []

    async def follow() -> None:
        while True:
            seen.extend(await feed.next_batch())

    return feed, seen, asyncio.create_task(follow())


async def _ended(e2e: E2E, run_id: str) -> bool:
    found = await e2e.client.get_workflow(run_id)
    return found is not None and found.status is not WorkflowStatus.RUNNING


async def test_a_retried_nodes_successors_and_error_edge_wait_for_its_final_outcome(e2e: E2E) -> None:
    """Through a real worker: ``ok`` fails twice then completes, ``bad`` fails all four attempts.
    What follows each is made once, after the attempt that ended it, never after a retry."""
    feed, seen, follower = await _follow(e2e)
    e2e.platform.worker()
    e2e.platform.scheduler()  # promotes the retries when their delay is up
    run = await e2e.client.submit_workflow(
        group(
            signature("wf_flaky", fail_times=2)
            .named("ok")
            .then(signature("wf_step", node="after_ok").named("after_ok")),
            signature("wf_flaky", fail_times=9)
            .named("bad")
            .then(
                signature("wf_step", node="after_bad").named("after_bad"),
                on_error=signature("wf_step", node="handler").named("handler").errors("err"),
            ),
        )
    )
    await wait_until(lambda: _ended(e2e, run.id), 30)
    await asyncio.sleep(0.3)  # the last transitions reach the follower
    follower.cancel()
    await feed.__aexit__(None, None, None)

    done = await e2e.client.get_workflow(run.id)
    assert done is not None and done.status is WorkflowStatus.FAILED and done.failed_node == "bad"
    ids = {n.node: n.task_id for n in done.nodes}
    tasks = {node: await e2e.store.get_task(task_id) for node, task_id in ids.items()}
    assert {node: t.status for node, t in tasks.items() if t} == {
        "ok": TaskStatus.COMPLETED, "after_ok": TaskStatus.COMPLETED, "bad": TaskStatus.FAILED,
        "after_bad": TaskStatus.CANCELLED, "handler": TaskStatus.COMPLETED,
    }  # fmt: skip
    assert tasks["ok"].result == 2 and tasks["bad"].retry_attempt == 3  # type: ignore[union-attr]
    assert tasks["handler"].result == {"node": "handler", "parents": [], "failed": "bad"}  # type: ignore[union-attr]
    assert tasks["after_bad"].cancel_reason == "workflow node bad ended failed"  # type: ignore[union-attr]

    def of(node: str) -> list[Transition]:
        return [t for t in seen if t.task_id == ids[node]]

    # ok and bad were retried (back to submitted or scheduled after each failed attempt) ...
    assert sum(t.old is TaskStatus.STARTED and not t.new.is_terminal for t in of("ok")) == 2
    assert sum(t.old is TaskStatus.STARTED and not t.new.is_terminal for t in of("bad")) == 3
    # ... and what follows each was made once, no earlier than the attempt that ended it.
    for parent, children in (("ok", ["after_ok"]), ("bad", ["after_bad", "handler"])):
        (end,) = [t for t in of(parent) if t.new.is_terminal]
        for child in children:
            (made,) = [t for t in of(child) if t.old is TaskStatus.UNSUBMITTED]
            assert made.at_ms >= end.at_ms and seen.index(made) > seen.index(end), (parent, child)
    runs = Counter(label for _, label in e2e.platform.runs())
    assert runs["wf_flaky"] == 3 + 4 and runs["wf_step"] == 2  # after_ok and handler, once each


async def test_a_node_resubmitted_from_the_dlq_over_rest_resumes_the_run_downstream(
    e2e: E2E, tmp_path: Path
) -> None:
    """``fix`` fails and is dead-lettered, cancelling the nodes after it; once its cause is fixed,
    resubmitting it through ``POST /dead-letter-queue/resubmit`` runs the rest of the run."""
    marker = tmp_path / "fixed"
    e2e.platform.worker()
    manager = e2e.platform.manager()
    run = await e2e.client.submit_workflow(
        chain(
            signature("wf_step", node="first").named("first"),
            signature("wf_until_fixed", marker=str(marker)).named("fix"),
            group(
                signature("wf_step", node="left").named("left"),
                signature("wf_step", node="right").named("right"),
            ),
            signature("wf_step", node="last").results("parents").named("last"),
        )
    )
    await wait_until(lambda: _ended(e2e, run.id), 30)
    failed = await e2e.client.get_workflow(run.id)
    assert failed is not None and failed.status is WorkflowStatus.FAILED and failed.failed_node == "fix"
    before = {n.node: n for n in failed.nodes}
    assert {n: before[n].status for n in ("left", "right", "last")} == dict.fromkeys(
        ("left", "right", "last"), TaskStatus.CANCELLED
    )

    marker.write_text("x")
    async with httpx.AsyncClient(base_url=manager.url) as http:
        dlq = (await http.get("/dead-letter-queue")).json()
        assert [t["id"] for t in dlq["tasks"]] == [before["fix"].task_id]
        answer = await http.post("/dead-letter-queue/resubmit", json={"task_ids": [before["fix"].task_id]})
        assert answer.status_code == 200 and answer.json()["resubmitted"] == 1, answer.text
        await wait_until(lambda: _ended(e2e, run.id), 30)
        shown = (await http.get(f"/workflows/{run.id}")).json()

    assert shown["status"] == "completed" and shown["failed_node"] is None
    after = {n["id"]: n for n in shown["nodes"]}
    assert {n["status"] for n in after.values()} == {"completed"}
    assert after["fix"]["task_id"] == before["fix"].task_id  # the same task, run again
    for node in ("left", "right", "last"):  # made anew; the cancelled tasks stay cancelled
        assert after[node]["task_id"] != before[node].task_id
        old = await e2e.store.get_task(before[node].task_id)
        assert old is not None and old.status is TaskStatus.CANCELLED
    last = await e2e.store.get_task(after["last"]["task_id"])
    assert last is not None and last.result == {"node": "last", "parents": ["left", "right"]}
    runs = Counter(label for _, label in e2e.platform.runs())
    assert runs["wf_until_fixed"] == 2 and runs["wf_step"] == 4  # first once; left, right, last once


async def run_across_queues(e2e: E2E, queues: list[str], tmp_path: Path) -> None:
    """A run whose nodes sit in three queues (on a cluster, three shards) through real worker and
    scheduler processes: results passed across queues, a fan-in of two queues, a failure taking
    its error edge into another queue and cancelling what follows it there; then a run cancelled
    while its node in another queue runs."""
    from jobbers.models.queue_config import QueueConfig

    q0, q1, q2 = queues
    for q in queues:
        await e2e.config.save_queue(QueueConfig(name=q))
    e2e.platform.worker()
    e2e.platform.scheduler(SCHEDULER_POLL_INTERVAL="0.2")

    def step(node: str, queue: str) -> Any:
        return signature("wf_step", node=node, queue=queue).named(node)

    run = await e2e.client.submit_workflow(
        step("a", q0).then(
            step("b", q1).results("parents"), step("e", q2)
        ).then(step("f", q0).results("parents")).then(
            signature("wf_until_fixed", marker=str(tmp_path / "never"), queue=q2).named("c").then(
                step("d", q0), on_error=step("h", q1).errors("err")
            )
        ),
        name="across",
    )  # fmt: skip
    await wait_until(lambda: _ended(e2e, run.id), 40)

    done = await e2e.client.get_workflow(run.id)
    assert done is not None and done.queue == q0
    assert done.status is WorkflowStatus.FAILED and done.failed_node == "c"
    tasks = {n.node: await e2e.store.get_task(n.task_id) for n in done.nodes}
    assert {node: (t.status, t.queue) for node, t in tasks.items() if t} == {
        "a": (TaskStatus.COMPLETED, q0), "b": (TaskStatus.COMPLETED, q1), "e": (TaskStatus.COMPLETED, q2),
        "f": (TaskStatus.COMPLETED, q0), "c": (TaskStatus.FAILED, q2), "d": (TaskStatus.CANCELLED, q0),
        "h": (TaskStatus.COMPLETED, q1),
    }  # fmt: skip
    assert tasks["b"].result == {"node": "b", "parents": ["a"]}  # type: ignore[union-attr]
    assert tasks["f"].result == {"node": "f", "parents": ["b", "e"]}  # type: ignore[union-attr]
    assert tasks["h"].result == {"node": "h", "parents": [], "failed": "c"}  # type: ignore[union-attr]
    assert tasks["d"].cancel_reason == "workflow node c ended failed"  # type: ignore[union-attr]
    runs = Counter(task_id for task_id, label in e2e.platform.runs() if label == "wf_step")
    assert sorted(runs.values()) == [1] * 5  # a, b, e, f, h: each once
    await assert_exactly_one_terminal_state(e2e.store, [n.task_id for n in done.nodes])

    # Cancelled while its node in another queue runs: that node is asked to stop there.
    long = await e2e.client.submit_workflow(
        chain(step("first", q0), signature("nap", seconds=30, queue=q1).named("long"), step("never", q2))
    )
    found = await e2e.client.get_workflow(long.id)
    await wait_until(lambda: _started(e2e, long.id, "long"), 30)
    assert await e2e.client.cancel_workflow(long.id) is WorkflowStatus.RUNNING
    await wait_until(lambda: _ended(e2e, long.id), 30)
    found = await e2e.client.get_workflow(long.id)
    assert found is not None and found.status is WorkflowStatus.CANCELLED
    assert {n.node: n.status for n in found.nodes} == {
        "first": TaskStatus.COMPLETED, "long": TaskStatus.CANCELLED, "never": TaskStatus.CANCELLED,
    }  # fmt: skip


async def _started(e2e: E2E, run_id: str, node: str) -> bool:
    found = await e2e.client.get_workflow(run_id)
    return found is not None and any(n.node == node and n.status is TaskStatus.STARTED for n in found.nodes)


async def test_a_run_across_three_queues_through_real_processes(e2e: E2E, tmp_path: Path) -> None:
    await run_across_queues(e2e, ["wf-a", "wf-b", "wf-c"], tmp_path)
