"""Workflow runs in the state layer: edges settled in the script that ends a node, against real Redis."""

from __future__ import annotations

from typing import Any

import pytest

from jobbers.client import JobbersClient
from jobbers.context import RunningTask
from jobbers.models.event import EventKind
from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import TaskStatus
from jobbers.models.workflow import WorkflowStatus
from jobbers.registry import register_task
from jobbers.state.codec import pack
from jobbers.state.events import EventLog
from jobbers.state.store import NewTask, Outcome, TaskStore, new_task_id
from jobbers.state.workflows import (
    WorkflowGraphError,
    WorkflowNode,
    cancel_workflow,
    check_graph,
    get_workflow,
    list_workflows,
    relay_workflow_outbox,
    submit_workflow,
)
from jobbers.worker.fan_out import complete_with_fan_out
from jobbers.workflows import chain, group, merge, signature

DEFAULT = [QueueConfig(name="default")]


def _node(wid: str, node: str, *after: str, on_error_of: tuple[str, ...] = (), **kw: Any) -> WorkflowNode:
    task = NewTask(name=f"t_{node}", params={"n": node}, workflow_id=wid, workflow_node=node)
    return WorkflowNode(node=node, task=task, after=after, on_error_of=on_error_of, **kw)


async def _run_ready(store: TaskStore, outcomes: dict[str, str]) -> list[str]:
    """Claim everything ready and end each node as ``outcomes`` says (default completed, result = node)."""
    claimed = await store.claim("w1", 30, 100, DEFAULT)
    done = []
    rows = []
    for t in claimed.tasks:
        node = t.params["n"]
        status = outcomes.get(node, "completed")
        done.append(node)
        rows.append(
            Outcome(
                id=t.id,
                token=t.token,
                status=TaskStatus(status),
                result=pack({"from": node, "params": t.params}) if status == "completed" else b"",
                error_type="ValueError" if status == "failed" else "",
                error_message="boom" if status == "failed" else "",
            )
        )
    assert all(await store.finish(rows))
    return sorted(done)


async def _states(store: TaskStore, wid: str) -> dict[str, TaskStatus | None]:
    run = await get_workflow(store, wid)
    assert run is not None
    return {n.node: n.status for n in run.nodes}


async def test_a_diamond_with_results_and_a_finished_run(store: TaskStore) -> None:
    wid = new_task_id()
    nodes = [
        _node(wid, "a"),
        _node(wid, "b", "a"),
        _node(wid, "c", "a"),
        _node(wid, "d", "b", "c", results_param="parents"),
        _node(wid, "alert", on_error_of=("d",), error_param="err"),
    ]
    assert await submit_workflow(store, wid, "diamond", nodes) == (True, WorkflowStatus.RUNNING)
    assert await submit_workflow(store, wid, "diamond", nodes) == (
        False,
        WorkflowStatus.RUNNING,
    )  # idempotent
    states = await _states(store, wid)
    assert states["a"] is TaskStatus.SUBMITTED and states["b"] is None and states["d"] is None
    assert await _run_ready(store, {}) == ["a"]
    assert await _run_ready(store, {}) == ["b", "c"]
    claimed = await store.claim("w1", 30, 100, DEFAULT)
    (d,) = claimed.tasks
    # The fan-in node gets both parents' results, keyed by node id, once.
    assert d.params["parents"]["b"]["from"] == "b" and d.params["parents"]["c"]["from"] == "c"
    assert await store.finish([Outcome(id=d.id, token=d.token, status=TaskStatus.COMPLETED)]) == [True]
    run = await get_workflow(store, wid)
    assert run is not None and run.status is WorkflowStatus.COMPLETED and run.completed_at is not None
    by_node = {n.node: n for n in run.nodes}
    assert by_node["alert"].status is TaskStatus.CANCELLED and by_node["alert"].on_error_of == ("d",)
    alert = await store.get_task(by_node["alert"].task_id)
    assert alert is not None and "error edge was not taken" in (alert.cancel_reason or "")
    assert alert.workflow_id == wid and alert.workflow_node == "alert"
    assert by_node["d"].after == ("b", "c")
    assert [r.id for r in (await list_workflows(store)).runs] == [wid]
    assert await store.queue_depth("default") == 0


async def test_a_failing_branch_runs_its_error_edge_and_cancels_what_depends_on_it(store: TaskStore) -> None:
    wid = new_task_id()
    nodes = [
        _node(wid, "a"),
        _node(wid, "b", "a"),
        _node(wid, "c", "a"),
        _node(wid, "d", "b", "c"),
        _node(wid, "e", "d"),
        _node(wid, "notify", on_error_of=("b",), error_param="err"),
    ]
    await submit_workflow(store, wid, "fan-in", nodes)
    await _run_ready(store, {})
    assert await _run_ready(store, {"b": "failed"}) == ["b", "c"]
    states = await _states(store, wid)
    assert states["d"] is TaskStatus.CANCELLED and states["e"] is TaskStatus.CANCELLED
    run = await get_workflow(store, wid)
    assert run is not None and run.status is WorkflowStatus.RUNNING and run.failed_node == "b"
    claimed = await store.claim("w1", 30, 100, DEFAULT)
    (notify,) = claimed.tasks
    assert notify.params["err"]["node"] == "b" and "boom" in notify.params["err"]["error"]
    d = await store.get_task(next(n.task_id for n in run.nodes if n.node == "d"))
    assert d is not None and d.cancel_reason == "workflow node b ended failed"
    await store.finish([Outcome(id=notify.id, token=notify.token, status=TaskStatus.COMPLETED)])
    run = await get_workflow(store, wid)
    assert run is not None and run.status is WorkflowStatus.FAILED


async def test_a_retry_waits_and_a_lost_lease_never_makes_a_successor_twice(store: TaskStore) -> None:
    wid = new_task_id()
    await submit_workflow(store, wid, "chain", [_node(wid, "a"), _node(wid, "b", "a")])
    (a,) = (await store.claim("w1", 30, 10, DEFAULT)).tasks
    await store.finish([Outcome(id=a.id, token=a.token, status="retry", retry_attempt=1)])
    assert (await _states(store, wid))["b"] is None  # the retried node's successor waits
    (a,) = (await store.claim("w1", 30, 10, DEFAULT)).tasks
    assert await store.finish([Outcome(id=a.id, token=a.token, status=TaskStatus.COMPLETED)]) == [True]
    # A late second write of the same attempt is refused: b is made once.
    assert await store.finish([Outcome(id=a.id, token=a.token, status=TaskStatus.COMPLETED)]) == [False]
    assert await store.queue_depth("default") == 1


async def test_cancelling_a_run_mid_way(store: TaskStore) -> None:
    wid = new_task_id()
    nodes = [_node(wid, "a"), _node(wid, "b"), _node(wid, "c", "a", "b"), _node(wid, "d", "c")]
    await submit_workflow(store, wid, "run", nodes)
    (first,) = (await store.claim("w1", 30, 1, DEFAULT)).tasks
    assert await cancel_workflow(store, wid) is WorkflowStatus.RUNNING
    states = await _states(store, wid)
    assert states[first.params["n"]] is TaskStatus.STARTED  # asked to stop
    assert [s for n, s in states.items() if n != first.params["n"]] == [TaskStatus.CANCELLED] * 3
    await store.finish([Outcome(id=first.id, token=first.token, status=TaskStatus.CANCELLED)])
    run = await get_workflow(store, wid)
    assert run is not None and run.status is WorkflowStatus.CANCELLED
    assert await cancel_workflow(store, wid) is WorkflowStatus.CANCELLED
    assert await cancel_workflow(store, "nope") is None and await get_workflow(store, "nope") is None


@pytest.mark.parametrize(
    ("nodes", "node", "words"),
    [
        ([_node("w", "a", "b"), _node("w", "b", "a")], "a", "cycle"),
        ([_node("w", "a", "zz")], "a", "unknown node 'zz'"),
        ([_node("w", "a"), _node("w", "x", on_error_of=("q",))], "x", "error edge"),
        ([_node("w", "a"), _node("w", "a")], "a", "twice"),
    ],
)
def test_a_graph_that_cannot_run_names_its_node(nodes: list[WorkflowNode], node: str, words: str) -> None:
    with pytest.raises(WorkflowGraphError) as caught:
        check_graph(nodes)
    assert caught.value.node == node and words in str(caught.value)


async def test_the_builder_and_the_client_run_chain_group_merge_and_error_edges(store: TaskStore) -> None:
    @register_task("wf_load")
    async def load(x: int) -> int:
        return x

    @register_task("wf_sum")
    async def total(parents: dict[str, Any]) -> int:
        return sum(parents.values())

    @register_task("wf_alert")
    async def alert(err: dict[str, Any] | None = None) -> None:
        return None

    client = JobbersClient(store)
    run = chain(
        load.s(x=1).named("first"),  # type: ignore[attr-defined]
        merge(load.s(x=2), load.s(x=3), into=total.s().results("parents")),  # type: ignore[attr-defined]
    ).then(on_error=alert.s().errors("err"))  # type: ignore[attr-defined]
    submitted = await client.submit_workflow(run, name="sums")
    assert [n.node for n in submitted.nodes] == ["first", "wf_load", "wf_load-2", "wf_sum", "wf_alert"]
    by_node = {n.node: n for n in submitted.nodes}
    assert by_node["wf_sum"].after == ("wf_load", "wf_load-2") and by_node["wf_alert"].on_error_of == (
        "wf_sum",
    )
    assert by_node["wf_load"].after == ("first",)
    results: dict[str, Any] = {}
    while True:
        claimed = (await store.claim("w1", 30, 10, DEFAULT)).tasks
        if not claimed:
            break
        rows = []
        for t in claimed:
            value = sum(t.params["parents"].values()) if "parents" in t.params else t.params["x"]
            results[t.id] = value
            rows.append(Outcome(id=t.id, token=t.token, status=TaskStatus.COMPLETED, result=pack(value)))
        await store.finish(rows)
    done = await client.get_workflow(submitted.id)
    assert done is not None and done.status is WorkflowStatus.COMPLETED
    assert results[next(n.task_id for n in done.nodes if n.node == "wf_sum")] == 5
    assert {n.node: n.status for n in done.nodes}["wf_alert"] is TaskStatus.CANCELLED
    assert await client.cancel_workflow(submitted.id) is WorkflowStatus.COMPLETED
    with pytest.raises(WorkflowGraphError, match="twice"):
        await client.submit_workflow(group(load.s(x=1).named("dup"), load.s(x=2).named("dup")))  # type: ignore[attr-defined]


async def test_a_retried_nodes_successors_wait_for_its_final_failure(store: TaskStore) -> None:
    wid = new_task_id()
    nodes = [_node(wid, "a"), _node(wid, "b", "a"), _node(wid, "h", on_error_of=("a",), error_param="err")]
    await submit_workflow(store, wid, "retries", nodes)
    for attempt in (1, 2):
        (a,) = (await store.claim("w1", 30, 10, DEFAULT)).tasks
        await store.finish([Outcome(id=a.id, token=a.token, status="retry", retry_attempt=attempt)])
        states = await _states(store, wid)
        assert states["b"] is None and states["h"] is None  # neither edge is settled by a retry
    (a,) = (await store.claim("w1", 30, 10, DEFAULT)).tasks
    await store.finish(
        [Outcome(a.id, a.token, TaskStatus.FAILED, error_type="ValueError", error_message="x")]
    )
    (h,) = (await store.claim("w1", 30, 10, DEFAULT)).tasks
    assert h.params["err"]["node"] == "a" and (await _states(store, wid))["b"] is TaskStatus.CANCELLED


async def test_a_node_resubmitted_from_the_dlq_resumes_the_run_downstream_of_it(store: TaskStore) -> None:
    wid = new_task_id()
    nodes = [
        _node(wid, "a"),
        _node(wid, "b", "a"),
        _node(wid, "c", "b"),
        _node(wid, "d", "b"),
        _node(wid, "e", "c", "d", results_param="parents"),
        _node(wid, "h", on_error_of=("b",)),
    ]
    await submit_workflow(store, wid, "resume", nodes)
    await _run_ready(store, {})
    (b,) = (await store.claim("w1", 30, 10, DEFAULT)).tasks
    await store.finish(
        [Outcome(b.id, b.token, TaskStatus.FAILED, error_type="E", error_message="x", dead_letter=True)]
    )
    assert await _run_ready(store, {}) == ["h"]  # the error edge ran
    before = await get_workflow(store, wid)
    assert before is not None and before.status is WorkflowStatus.FAILED and before.failed_node == "b"
    old = {n.node: n.task_id for n in before.nodes}
    assert {n.node: n.status for n in before.nodes}["e"] is TaskStatus.CANCELLED

    (resubmitted,) = await store.resubmit_dead_letters([b.id], reset_retry_count=False)

    assert resubmitted.outcome == "resubmitted"
    reopened = await get_workflow(store, wid)
    assert reopened is not None and reopened.status is WorkflowStatus.RUNNING and reopened.failed_node is None
    states = {n.node: n.status for n in reopened.nodes}
    assert states == {"a": TaskStatus.COMPLETED, "b": TaskStatus.SUBMITTED, "c": None, "d": None, "e": None,
                      "h": TaskStatus.COMPLETED}  # fmt: skip
    new = {n.node: n.task_id for n in reopened.nodes}
    assert all(new[n] != old[n] for n in "cde") and new["b"] == old["b"] and new["h"] == old["h"]
    assert {t.status for t in await store.get_tasks([old[n] for n in "cde"])} == {TaskStatus.CANCELLED}
    assert await _run_ready(store, {}) == ["b"]
    assert await _run_ready(store, {}) == ["c", "d"]
    (e,) = (await store.claim("w1", 30, 10, DEFAULT)).tasks
    assert e.id == new["e"] and set(e.params["parents"]) == {"c", "d"}
    await store.finish([Outcome(e.id, e.token, TaskStatus.COMPLETED)])
    done = await get_workflow(store, wid)
    assert done is not None and done.status is WorkflowStatus.COMPLETED
    assert (await store.get_task(new["e"])) is not None  # the new tasks are found by id


async def test_a_resubmitted_node_whose_sibling_still_failed_leaves_their_fan_in_cancelled(
    store: TaskStore,
) -> None:
    wid = new_task_id()
    nodes = [_node(wid, "a"), _node(wid, "b"), _node(wid, "j", "a", "b")]
    await submit_workflow(store, wid, "two-failures", nodes)
    claimed = (await store.claim("w1", 30, 10, DEFAULT)).tasks
    await store.finish(
        [
            Outcome(t.id, t.token, TaskStatus.FAILED, error_type="E", error_message="x", dead_letter=True)
            for t in claimed
        ]
    )
    a = next(t for t in claimed if t.params["n"] == "a")

    await store.resubmit_dead_letters([a.id], reset_retry_count=False)

    run = await get_workflow(store, wid)
    assert run is not None and run.status is WorkflowStatus.RUNNING and run.failed_node == "b"
    j = await store.get_task(next(n.task_id for n in run.nodes if n.node == "j"))
    assert (
        j is not None
        and j.status is TaskStatus.CANCELLED
        and j.cancel_reason == "workflow node b ended failed"
    )
    await _run_ready(store, {})
    run = await get_workflow(store, wid)
    assert run is not None and run.status is WorkflowStatus.FAILED


def _spawned(*children: str, collector: str = "c") -> Any:
    handle = RunningTask(id="x", name="t", version=1, queue="default", params={}, retry_attempt=0)
    handle.fan_out(
        [signature(f"t_{c}", n=c) for c in children],
        signature(f"t_{collector}", n=collector).results("parts"),
    )
    return handle.fanned_out


async def test_a_fan_out_joins_the_run_with_its_nodes_completion(store: TaskStore) -> None:
    wid = new_task_id()
    await submit_workflow(store, wid, "fan", [_node(wid, "a"), _node(wid, "z", "a", results_param="up")])
    (a,) = (await store.claim("w1", 30, 10, DEFAULT)).tasks

    late = Outcome(a.id, "not-the-token", TaskStatus.COMPLETED)
    assert await complete_with_fan_out(store, late, _spawned("x1", "x2")) is None
    assert len((await get_workflow(store, wid)).nodes) == 2  # type: ignore[union-attr]
    done = Outcome(a.id, a.token, TaskStatus.COMPLETED, result=pack(7))
    assert await complete_with_fan_out(store, done, _spawned("x1", "x2")) is None

    run = await get_workflow(store, wid)
    assert run is not None and run.status is WorkflowStatus.RUNNING
    by_node = {n.node: n for n in run.nodes}
    assert list(by_node) == ["a", "z", "a.t_x1", "a.t_x2", "a.t_c"]
    assert by_node["a"].status is TaskStatus.COMPLETED and by_node["a.t_x1"].after == ("a",)
    assert by_node["a.t_c"].after == ("a.t_x1", "a.t_x2") and by_node["z"].after == ("a.t_c",)
    assert await _run_ready(store, {}) == ["x1", "x2"]  # made ready by a's completion
    (c,) = (await store.claim("w1", 30, 10, DEFAULT)).tasks
    assert set(c.params["parts"]) == {"a.t_x1", "a.t_x2"}
    await store.finish([Outcome(c.id, c.token, TaskStatus.COMPLETED, result=pack(20))])
    (z,) = (await store.claim("w1", 30, 10, DEFAULT)).tasks
    assert z.params["up"] == {"a.t_c": 20}  # z waited for the collector, not for a
    await store.finish([Outcome(z.id, z.token, TaskStatus.COMPLETED)])
    assert (await get_workflow(store, wid)).status is WorkflowStatus.COMPLETED  # type: ignore[union-attr]


async def test_a_fan_out_from_a_plain_task_or_twice_fails_the_task(store: TaskStore) -> None:
    plain = await store.submit(NewTask(name="t_p"))
    (p,) = (await store.claim("w1", 30, 10, DEFAULT)).tasks
    failed = await complete_with_fan_out(
        store, Outcome(plain.id, p.token, TaskStatus.COMPLETED), _spawned("x")
    )
    assert (
        failed is not None and failed.status is TaskStatus.FAILED and "workflow node" in failed.error_message
    )

    wid = new_task_id()
    await submit_workflow(store, wid, "clash", [_node(wid, "a"), _node(wid, "a.t_x")])
    claimed = (await store.claim("w1", 30, 10, DEFAULT)).tasks
    a = next(t for t in claimed if t.params["n"] == "a")
    clash = await complete_with_fan_out(store, Outcome(a.id, a.token, TaskStatus.COMPLETED), _spawned("x"))
    assert (
        clash is not None
        and clash.error_type == "FanOutError"
        and "in the run already" in clash.error_message
    )
    assert len((await get_workflow(store, wid)).nodes) == 2  # type: ignore[union-attr]


# -- runs across queues: the outbox ---------------------------------------------------------------


def _in(queue: str, wid: str, node: str, *after: str, **kw: Any) -> WorkflowNode:
    task = NewTask(name=f"t_{node}", params={"n": node}, queue=queue, workflow_id=wid, workflow_node=node)
    return WorkflowNode(node=node, task=task, after=after, **kw)


async def _relay_all(store: TaskStore, queues: list[str], redeliver: bool = False) -> int:
    """Relay until the outboxes are empty; with ``redeliver``, every entry is delivered twice (as
    after a relay that died before deleting it). Returns how many entries were delivered."""
    total = 0
    again: set[tuple[str, bytes]] = set()
    while True:
        kept = {q: await store.redis.hgetall(store.keys.space(q).wf_outbox) for q in queues}  # type: ignore[misc]
        n = await relay_workflow_outbox(store, queues)
        if n == 0:
            return total
        total += n
        if redeliver:
            for q, entries in kept.items():
                fresh = {f: v for f, v in entries.items() if (q, f) not in again}
                again |= {(q, f) for f in fresh}
                if fresh:
                    await store.redis.hset(store.keys.space(q).wf_outbox, mapping=fresh)  # type: ignore[misc]
                    total -= len(fresh)  # delivered again: counted once


async def _run_queue(store: TaskStore, queue: str, outcomes: dict[str, str]) -> dict[str, Any]:
    """Claim what is ready in ``queue`` and end it as ``outcomes`` says (default completed)."""
    claimed = (await store.claim("w1", 30, 100, [QueueConfig(name=queue)])).tasks
    rows = []
    for t in claimed:
        status = outcomes.get(t.params["n"], "completed")
        rows.append(Outcome(t.id, t.token, TaskStatus(status), result=pack(t.params["n"].upper()),
                            error_type="E" if status == "failed" else "",
                            error_message="broke" if status == "failed" else ""))  # fmt: skip
    assert all(await store.finish(rows))
    return {t.params["n"]: t.params for t in claimed}


@pytest.mark.parametrize("redeliver", [False, True])
async def test_a_run_across_three_queues_passes_results_and_takes_an_error_edge_through_the_outbox(
    store: TaskStore, redeliver: bool
) -> None:
    queues = ["home", "q2", "q3"]
    wid = new_task_id()
    nodes = [
        _in("home", wid, "a"),
        _in("q2", wid, "b", "a", results_param="up"),
        _in("q3", wid, "c", "b", results_param="up"),
        _in("home", wid, "d", "c"),
        _in("q2", wid, "h", on_error_of=("c",), error_param="err"),
    ]
    await submit_workflow(store, wid, "across", nodes)
    assert await _run_queue(store, "home", {}) == {"a": {"n": "a"}}
    assert await _run_queue(store, "q2", {}) == {}  # b waits for the relay
    assert await _relay_all(store, queues, redeliver) == 1
    assert (await _run_queue(store, "q2", {}))["b"]["up"] == {"a": "A"}
    assert await _relay_all(store, queues, redeliver) == 2  # b's end at home, then c made in q3
    assert (await _run_queue(store, "q3", {"c": "failed"}))["c"]["up"] == {"b": "B"}
    await _relay_all(store, queues, redeliver)
    h = (await _run_queue(store, "q2", {}))["h"]
    assert h["err"]["node"] == "c" and "broke" in h["err"]["error"]
    await _relay_all(store, queues, redeliver)

    run = await get_workflow(store, wid)
    assert run is not None and run.status is WorkflowStatus.FAILED and run.failed_node == "c"
    assert {n.node: n.status for n in run.nodes} == {
        "a": TaskStatus.COMPLETED, "b": TaskStatus.COMPLETED, "c": TaskStatus.FAILED,
        "d": TaskStatus.CANCELLED, "h": TaskStatus.COMPLETED,
    }  # fmt: skip
    for n in run.nodes:  # each node's task is in its own queue's space, and found by id
        task = await store.get_task(n.task_id)
        assert task is not None and task.queue == {"a": "home", "d": "home", "c": "q3"}.get(n.node, "q2")
    assert all([await store.redis.hlen(store.keys.space(q).wf_outbox) == 0 for q in queues])  # type: ignore[misc]
    counts = await store.redis.hmget(store.keys.space("home").wf(wid), ["ended", "total"])  # type: ignore[misc]
    assert counts == [b"5", b"5"]  # each end counted once, however often it was delivered
    for key in (store.keys.space("home").wf(wid), *(store.keys.space(q).wf_outbox for q in queues)):
        assert await store.redis.ttl(key) in (-1, -2)  # nothing of a run expires
    # Each node is an ordinary task in the event log, wherever it ran.
    log = EventLog(store)
    ids = {n.node: n.task_id for n in run.nodes}
    c_events = [e.type for e in await log.task_events(ids["c"]) or []]
    assert c_events == [EventKind.SUBMITTED, EventKind.STARTED, EventKind.FAILED]
    (d_cancel,) = [e for e in await log.task_events(ids["d"]) or [] if e.type is EventKind.CANCELLED]
    assert d_cancel.detail == "workflow node c ended failed"
    made = [await store.redis.zcard(store.keys.space(q).status("completed")) for q in queues]  # type: ignore[misc]
    assert made == [1, 2, 0]  # a; b and h: each task made and run once


async def test_cancelling_a_run_across_queues_cancels_its_nodes_there(store: TaskStore) -> None:
    queues = ["home", "q2"]
    wid = new_task_id()
    await submit_workflow(store, wid, "x", [_in("home", wid, "a"), _in("q2", wid, "b"), _in("q2", wid, "c", "a")])
    await _relay_all(store, queues)  # b (no parents) is made in q2
    assert (await _states(store, wid))["b"] is TaskStatus.SUBMITTED

    assert await cancel_workflow(store, wid) is WorkflowStatus.RUNNING
    await _relay_all(store, queues)

    run = await get_workflow(store, wid)
    assert run is not None and run.status is WorkflowStatus.CANCELLED
    assert {n.status for n in run.nodes} == {TaskStatus.CANCELLED}
    assert await store.queue_depth("q2") == 0 and await store.queue_depth("home") == 0


async def test_a_fan_out_from_a_node_in_another_queue_than_its_runs_fails_the_node(store: TaskStore) -> None:
    wid = new_task_id()
    await submit_workflow(store, wid, "x", [_in("home", wid, "a"), _in("q2", wid, "b", "a")])
    await _run_queue(store, "home", {})
    await _relay_all(store, ["home", "q2"])
    (b,) = (await store.claim("w1", 30, 10, [QueueConfig(name="q2")])).tasks

    failed = await complete_with_fan_out(store, Outcome(b.id, b.token, TaskStatus.COMPLETED), _spawned("x"))

    assert failed is not None and failed.status is TaskStatus.FAILED
    assert "run's first queue" in failed.error_message
    assert len((await get_workflow(store, wid)).nodes) == 2  # type: ignore[union-attr]


@pytest.mark.parametrize("redeliver", [False, True])
async def test_a_dead_lettered_node_resubmitted_resumes_its_run_across_queues(
    store: TaskStore, redeliver: bool
) -> None:
    """Resubmitting a node of the home queue remakes the cancelled nodes after it in other queues;
    resubmitting a node of another queue reopens its run in the home space, through the outbox."""
    queues = ["home", "q2", "q3"]
    wid = new_task_id()
    nodes = [
        _in("home", wid, "a"),
        _in("home", wid, "b", "a"),
        _in("q2", wid, "c", "b", results_param="up"),
        _in("q3", wid, "e", "b"),
        _in("q2", wid, "f", "c"),
        _in("home", wid, "g", "f", "e", results_param="up"),
    ]
    await submit_workflow(store, wid, "resume-across", nodes)

    async def dead_letter(queue: str, node: str) -> str:
        (t,) = (await store.claim("w1", 30, 10, [QueueConfig(name=queue)])).tasks
        assert t.params["n"] == node
        failed = Outcome(t.id, t.token, TaskStatus.FAILED, error_type="E", error_message="x", dead_letter=True)
        assert await store.finish([failed]) == [True]
        await _relay_all(store, queues, redeliver)
        return t.id

    await _run_queue(store, "home", {})  # a
    b = await dead_letter("home", "b")
    failed = await get_workflow(store, wid)
    assert failed is not None and failed.status is WorkflowStatus.FAILED and failed.failed_node == "b"
    old = {n.node: n.task_id for n in failed.nodes}
    assert {n.node: n.status for n in failed.nodes if n.node != "a"} == dict.fromkeys(
        "bcefg", TaskStatus.CANCELLED
    ) | {"b": TaskStatus.FAILED}

    # A node of the home queue: the nodes after it, in every queue, are made anew.
    await store.resubmit_dead_letters([b], reset_retry_count=False)
    await _run_queue(store, "home", {})  # b
    await _relay_all(store, queues, redeliver)
    assert (await _run_queue(store, "q3", {})) == {"e": {"n": "e"}}
    assert (await _run_queue(store, "q2", {})) == {"c": {"n": "c", "up": {"b": "B"}}}
    await _relay_all(store, queues, redeliver)
    f = await dead_letter("q2", "f")  # f fails in q2: g, at home, is cancelled again
    reopened = await get_workflow(store, wid)
    assert reopened is not None and reopened.status is WorkflowStatus.FAILED and reopened.failed_node == "f"
    remade = {n.node: n.task_id for n in reopened.nodes}
    assert all(remade[n] != old[n] for n in "cefg") and remade["b"] == old["b"]
    assert {t.status for t in await store.get_tasks([old[n] for n in "cefg"])} == {TaskStatus.CANCELLED}
    for n in "ce":  # found by id, in their own queues
        task = await store.get_task(remade[n])
        assert task is not None and task.queue == {"c": "q2", "e": "q3"}[n]

    # A node of another queue: its run is reopened at home, then its end settled there.
    await store.resubmit_dead_letters([f], reset_retry_count=False)
    await _relay_all(store, queues, redeliver)
    running = await get_workflow(store, wid)
    assert running is not None and running.status is WorkflowStatus.RUNNING and running.failed_node is None
    assert {n.node: n.status for n in running.nodes}["g"] is None  # made anew, waiting for f
    await _run_queue(store, "q2", {})  # f
    await _relay_all(store, queues, redeliver)
    assert set((await _run_queue(store, "home", {}))["g"]["up"]) == {"f", "e"}
    await _relay_all(store, queues, redeliver)

    done = await get_workflow(store, wid)
    assert done is not None and done.status is WorkflowStatus.COMPLETED
    assert {n.status for n in done.nodes} == {TaskStatus.COMPLETED}
    counts = await store.redis.hmget(store.keys.space("home").wf(wid), ["ended", "total"])  # type: ignore[misc]
    assert counts == [b"6", b"6"]
