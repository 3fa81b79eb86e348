"""Workflow runs in Redis: a graph of tasks whose edges are settled inside the scripts.

A run lives in the key space of its queue: one hash holds its graph (each node's submit row and
edges, written once at submit, never copied into the nodes' tasks) with the countdown of each
node's incoming edges and the run's status. Each node is an ordinary task carrying
``workflow_id`` and ``workflow_node``. Whatever script ends a node's task (a worker's finish, a
cancel, lease recovery, a stall, a queue clear) settles the node's outgoing edges in the same
call: the next nodes are made ready, or end ``cancelled`` naming the node that broke their
edge. A node's task is made exactly once (its ``made`` guard), so a parent run again after a
crash cannot make its successors twice; nothing in a run expires.

A run lives in the space of its first node's queue (its *home*). Its nodes may sit in other
queues (on a Redis Cluster, other shards): what a script of one space does to another (make a
node's task, cancel it, settle its end) goes through that space's outbox, which the scheduler
relays (``relay_workflow_outbox``); every delivery is idempotent, so a relay that crashes
half-way and delivers again changes nothing twice. Within one queue every step stays one
atomic script call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import msgpack

from jobbers.errors import WorkflowGraphError
from jobbers.models.task import TaskStatus
from jobbers.models.workflow import WorkflowStatus
from jobbers.state.codec import ms_to_datetime, pack_for_lua, unpack
from jobbers.state.cursors import Position
from jobbers.state.keys import Space
from jobbers.state.records import NewTask, Outcome, new_task_id
from jobbers.state.task_schema import SUBMIT_ROW, finish_row, submit_row

if TYPE_CHECKING:
    from jobbers.state.store import TaskStore


@dataclass(frozen=True)
class WorkflowNode:
    """One node of a run: its task, and the nodes whose outcome it waits for.

    It runs once every node in ``after`` completed and every node in ``on_error_of`` failed or
    stalled (after its retries); it ends cancelled as soon as one of them ends otherwise.
    ``results_param`` names the parameter that receives ``{parent node id: result}``;
    ``error_param`` the one that receives the failed parent's ``{node, task_id, status, error}``.
    """

    node: str
    task: NewTask
    after: tuple[str, ...] = ()
    on_error_of: tuple[str, ...] = ()
    results_param: str | None = None
    error_param: str | None = None


@dataclass(frozen=True)
class NodeState:
    """A node of a stored run: its task's id and status (``None`` while it waits for its parents)."""

    node: str
    task_id: str
    name: str
    status: TaskStatus | None
    after: tuple[str, ...]
    on_error_of: tuple[str, ...]


@dataclass(frozen=True)
class WorkflowRun:
    """A stored run and every node's state."""

    id: str
    name: str
    queue: str
    status: WorkflowStatus
    created_at: dt.datetime | None
    completed_at: dt.datetime | None
    failed_node: str | None
    nodes: list[NodeState] = field(default_factory=list)


def check_graph(nodes: Sequence[WorkflowNode], outside: Collection[str] = ()) -> None:
    """Raise ``WorkflowGraphError`` naming the node (and its field) when the graph cannot run: a duplicate or
    empty node id, an edge from an unknown node, or a cycle.
    ``outside``: nodes already in the run (a fan-out's parent) that edges may come from."""
    if not nodes:
        raise WorkflowGraphError("", "a workflow needs at least one node")
    by_id: dict[str, WorkflowNode] = {}
    for n in nodes:
        if not n.node:
            raise WorkflowGraphError(n.node, "a node id must not be empty")
        if n.node in by_id:
            raise WorkflowGraphError(n.node, "the node id is used twice")
        by_id[n.node] = n
    for n in nodes:
        for kind, field_name, parents in (
            ("success", "after", n.after),
            ("error", "on_error_of", n.on_error_of),
        ):
            for p in parents:
                if p not in by_id and p not in outside:
                    raise WorkflowGraphError(
                        n.node, f"its {kind} edge comes from unknown node {p!r}", field_name
                    )
                if p == n.node:
                    raise WorkflowGraphError(n.node, "an edge from a node to itself is a cycle", field_name)
        if len(set(n.after) | set(n.on_error_of)) != len(n.after) + len(n.on_error_of):
            raise WorkflowGraphError(n.node, "it has two edges from the same node", "after")
    # Kahn's algorithm: whatever is left unordered lies on a cycle.
    waiting = {n.node: sum(1 for p in (*n.after, *n.on_error_of) if p in by_id) for n in nodes}
    children: dict[str, list[str]] = {n.node: [] for n in nodes}
    for n in nodes:
        for p in (*n.after, *n.on_error_of):
            if p in by_id:
                children[p].append(n.node)
    ready = [k for k, v in waiting.items() if v == 0]
    seen = 0
    while ready:
        k = ready.pop()
        seen += 1
        for c in children[k]:
            waiting[c] -= 1
            if waiting[c] == 0:
                ready.append(c)
    if seen < len(nodes):
        stuck = next(n.node for n in nodes if waiting[n.node] > 0)
        raise WorkflowGraphError(stuck, "it lies on a cycle", "after")


def _s(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _rows(nodes: Sequence[WorkflowNode], outside: dict[str, str]) -> list[list[Any]]:
    """The script rows of ``nodes`` (see wf_submit.lua); ``outside``: the task id of each node
    outside ``nodes`` that an edge comes from."""
    succ: dict[str, list[str]] = {n.node: [] for n in nodes}
    err: dict[str, list[str]] = {n.node: [] for n in nodes}
    ids = {**outside, **{n.node: n.task.id for n in nodes}}
    for n in nodes:
        for p in n.after:
            succ.setdefault(p, []).append(n.node)
        for p in n.on_error_of:
            err.setdefault(p, []).append(n.node)
    return [
        [
            n.node,
            pack_for_lua(submit_row(n.task)),
            pack_for_lua(succ[n.node]),
            pack_for_lua(err[n.node]),
            pack_for_lua([[p, ids[p]] for p in (*n.after, *n.on_error_of)]),
            len(n.after) + len(n.on_error_of),
            n.results_param or "",
            n.error_param or "",
        ]
        for n in nodes
    ]


async def submit_workflow(
    store: TaskStore, workflow_id: str, name: str, nodes: Sequence[WorkflowNode]
) -> tuple[bool, WorkflowStatus]:
    """Write run ``workflow_id`` (checked by ``check_graph`` first) and make its first nodes ready,
    in one script call; the same id again changes nothing. Returns (created, status)."""
    fired = await submit_recurring_workflow(store, workflow_id, name, nodes, "", False)
    return fired.created, fired.status


@dataclass(frozen=True)
class FiredRun:
    """What submitting a recurring entry's run did: ``created`` it, found it existing already, or
    ``skipped`` it because the entry's previous run ``running`` had not ended."""

    created: bool
    status: WorkflowStatus
    skipped: bool = False
    running: str | None = None


async def submit_recurring_workflow(
    store: TaskStore,
    workflow_id: str,
    name: str,
    nodes: Sequence[WorkflowNode],
    entry_key: str,
    skip_if_running: bool,
) -> FiredRun:
    """Submit run ``workflow_id`` for recurring entry ``entry_key`` as ``submit_workflow`` does, and
    record it as the entry's last run, in the same script call. With ``skip_if_running``, nothing is
    written while the entry's last run (in the same queue) is still running: the check and the
    write are one atomic step, so two schedulers firing at once cannot both start a run."""
    check_graph(nodes)
    queue = nodes[0].task.queue
    q = store.keys.queue(queue)
    if skip_if_running:
        # Read first, so a skipped fire writes nothing at all (the script checks again, atomically).
        last = await store.redis.hget(q.space.wf_recurring, entry_key)  # type: ignore[misc,unused-ignore]
        if last is not None and _s(last) != workflow_id:
            status = await store.redis.hget(q.space.wf(_s(last)), "status")  # type: ignore[misc,unused-ignore]
            if status is not None and _s(status) == WorkflowStatus.RUNNING.value:
                return FiredRun(False, WorkflowStatus.RUNNING, skipped=True, running=_s(last))
    rows = _rows(nodes, {})
    # The global entries first (the queue set, where each node's task and the run are found):
    # an entry whose task or run was never written finds nothing.
    pipe = store.redis.pipeline(transaction=False)
    pipe.sadd(store.keys.queues, *sorted({n.task.queue for n in nodes}))
    pipe.hset(store.keys.workflows, workflow_id, queue)
    locator = {n.task.id: n.task.queue for n in nodes}
    for i in range(0, len(nodes), 5000):
        part = dict(list(locator.items())[i : i + 5000])
        pipe.hset(store.keys.locator, mapping=part)  # type: ignore[arg-type]
    await pipe.execute()
    answer = await store._scripts.run(
        "wf_submit",
        q.space,
        [q.space.wf(workflow_id)],
        [workflow_id, pack_for_lua(rows), name, entry_key, "1" if skip_if_running else "0", queue],
    )
    created, status = int(answer[0]), WorkflowStatus(_s(answer[1]))
    if created == 2:
        return FiredRun(False, status, skipped=True, running=_s(answer[2]))
    return FiredRun(bool(created), status)


async def _queue_of(store: TaskStore, workflow_id: str) -> str | None:
    raw = await store.redis.hget(store.keys.workflows, workflow_id)  # type: ignore[misc,unused-ignore]
    return _s(raw) if raw is not None else None


async def get_workflow(store: TaskStore, workflow_id: str) -> WorkflowRun | None:
    """Run ``workflow_id`` with every node's task id and status; ``None`` when unknown."""
    queue = await _queue_of(store, workflow_id)
    if queue is None:
        return None
    space = store.keys.space(queue)
    raw: dict[bytes, bytes] = await store.redis.hgetall(space.wf(workflow_id))  # type: ignore[misc,assignment,unused-ignore]
    if not raw or b"status" not in raw:
        return None
    names: list[str] = unpack(raw[b"nodes"]) or []
    # A row's params are msgpack inside msgpack, not text: the row is read raw.
    rows = {node: msgpack.unpackb(raw[b"row:" + node.encode()], raw=True) for node in names}
    id_at, name_at, queue_at = SUBMIT_ROW.index("id"), SUBMIT_ROW.index("name"), SUBMIT_ROW.index("queue")
    task_ids = [_s(rows[node][id_at]) for node in names]
    pipe = store.redis.pipeline(transaction=False)
    for node, task_id in zip(names, task_ids, strict=True):
        pipe.hget(store.keys.space(_s(rows[node][queue_at])).task(task_id), "status")
    statuses = await pipe.execute()
    nodes = []
    for node, task_id, status in zip(names, task_ids, statuses, strict=True):
        parents = unpack(raw[b"par:" + node.encode()]) or []
        error_parents = tuple(p[0] for p in parents if node in (unpack(raw[b"err:" + p[0].encode()]) or []))
        nodes.append(
            NodeState(
                node=node,
                task_id=task_id,
                name=_s(rows[node][name_at]),
                status=TaskStatus(_s(status)) if status is not None else None,
                after=tuple(p[0] for p in parents if p[0] not in error_parents),
                on_error_of=error_parents,
            )
        )
    failed = raw.get(b"failed_node")
    return WorkflowRun(
        id=workflow_id,
        name=_s(raw.get(b"name", b"")),
        queue=queue,
        status=WorkflowStatus(_s(raw[b"status"])),
        created_at=ms_to_datetime(raw.get(b"created_at")),
        completed_at=ms_to_datetime(raw.get(b"completed_at")),
        failed_node=_s(failed) if failed is not None else None,
        nodes=nodes,
    )


@dataclass(frozen=True)
class WorkflowPage:
    """One page of runs, newest first; ``next_cursor`` is ``None`` once the walk reached the end."""

    runs: list[WorkflowRun]
    next_cursor: str | None


async def list_workflows(
    store: TaskStore, limit: int = 100, cursor: str | None = None, queue: str | None = None
) -> WorkflowPage:
    """Runs of every queue (or of ``queue``), newest first, without their nodes.

    Each queue's index is merged in (created, id) order, newest first; a cursor (the last run's
    created time and id) resumes every index after it, so a page never skips or repeats a run.
    Raises ``InvalidCursorError`` for a cursor this listing did not hand out."""
    queues = [queue] if queue is not None else await store.known_queues()
    keys = [store.keys.space(q).wfs for q in queues]
    after = Position.decode(cursor) if cursor else None
    found: list[tuple[float, str, str]] = []
    if after is None:
        pipe = store.redis.pipeline(transaction=False)
        for key in keys:
            pipe.zrevrange(key, 0, limit, withscores=True)
        answers = await pipe.execute()
    else:
        # Runs created in the cursor's millisecond are fetched too, then those not after it dropped.
        pipe = store.redis.pipeline(transaction=False)
        for key in keys:
            pipe.zcount(key, after.score, after.score)
        ties = await pipe.execute()
        pipe = store.redis.pipeline(transaction=False)
        for key, tied in zip(keys, ties, strict=True):
            pipe.zrevrangebyscore(
                key, after.score, "-inf", start=0, num=limit + 1 + int(tied), withscores=True
            )
        answers = await pipe.execute()
    for q, rows in zip(queues, answers, strict=True):
        for wid, score in rows:
            run_id = _s(wid)
            if after is not None and (int(score), run_id) >= (after.score, after.member):
                continue
            found.append((score, run_id, q))
    found.sort(reverse=True)
    more = len(found) > limit
    found = found[:limit]
    pipe = store.redis.pipeline(transaction=False)
    for _, wid, q in found:
        pipe.hmget(
            store.keys.space(q).wf(wid), ["status", "name", "created_at", "completed_at", "failed_node"]
        )
    runs = []
    for (_, wid, q), f in zip(found, await pipe.execute(), strict=True):
        if f[0] is None:
            continue
        runs.append(
            WorkflowRun(
                id=wid,
                name=_s(f[1] or b""),
                queue=q,
                status=WorkflowStatus(_s(f[0])),
                created_at=ms_to_datetime(f[2]),
                completed_at=ms_to_datetime(f[3]),
                failed_node=_s(f[4]) if f[4] is not None else None,
            )
        )
    next_cursor = Position(0, int(found[-1][0]), found[-1][1]).encode() if more and found else None
    return WorkflowPage(runs, next_cursor)


async def cancel_workflow(
    store: TaskStore, workflow_id: str, reason: str = "workflow cancelled"
) -> WorkflowStatus | None:
    """Cancel every node of the run not yet ended (running ones are asked to stop); returns the
    run's status before, ``None`` when unknown. A run that already ended is left as it is."""
    queue = await _queue_of(store, workflow_id)
    if queue is None:
        return None
    space = store.keys.space(queue)
    before = await store._scripts.run("wf_cancel", space, [space.wf(workflow_id)], [reason])
    return WorkflowStatus(_s(before)) if before else None


async def fresh_ids_for_resubmit(store: TaskStore, task_ids: Sequence[str]) -> dict[Space, list[str]]:
    """Fresh task ids, by key space, for the nodes a DLQ resubmit of ``task_ids`` may make anew.

    A workflow node resubmitted from the DLQ resumes its run: the nodes after it that its failure
    cancelled get new tasks (their old ones stay cancelled), under ids chosen here and written to
    the task locator first, as a submit does (an id never used finds nothing). One id per
    cancelled node downstream of each resubmitted node; none when no resubmitted task is a node.
    """
    groups, _unknown = await store._spaces_of(task_ids)
    pipe = store.redis.pipeline(transaction=False)
    order: list[Space] = []
    for space, positions in groups.items():
        for i in positions:
            pipe.hmget(space.task(task_ids[i]), ["workflow_id", "workflow_node"])
            order.append(space)
    by_run: dict[str, set[str]] = {}
    for f in await pipe.execute():
        if f[0]:
            by_run.setdefault(_s(f[0]), set()).add(_s(f[1]))
    fresh: dict[Space, list[str]] = {}
    locator: dict[str, str] = {}
    for workflow_id, starts in by_run.items():
        run = await get_workflow(store, workflow_id)
        if run is None:
            continue
        children: dict[str, list[str]] = {n.node: [] for n in run.nodes}
        for n in run.nodes:
            for p in (*n.after, *n.on_error_of):
                children[p].append(n.node)
        status = {n.node: n.status for n in run.nodes}
        seen, walk = set(starts), list(starts)
        while walk:
            for c in children.get(walk.pop(), []):
                if c not in seen:
                    seen.add(c)
                    walk.append(c)
        count = sum(1 for n in seen - starts if status.get(n) is TaskStatus.CANCELLED)
        ids = [new_task_id() for _ in range(count)]
        fresh.setdefault(store.keys.space(run.queue), []).extend(ids)
        locator.update(dict.fromkeys(ids, run.queue))
    if locator:
        await store.redis.hset(store.keys.locator, mapping=locator)  # type: ignore[arg-type,misc,unused-ignore]
    return fresh


@dataclass(frozen=True)
class NodeOf:
    """Which run and node a task is (see ``node_of``)."""

    workflow_id: str
    node: str
    queue: str


async def node_of(store: TaskStore, task_id: str) -> NodeOf | None:
    """The run and node task ``task_id`` is, ``None`` when it is no workflow node (or unknown)."""
    queue = (await store.locate([task_id])).get(task_id)
    if queue is None:
        return None
    f = await store.redis.hmget(store.keys.space(queue).task(task_id), ["workflow_id", "workflow_node"])  # type: ignore[misc,unused-ignore]
    if not f[0]:
        return None
    return NodeOf(_s(f[0]), _s(f[1] or b""), queue)


async def finish_with_fan_out(
    store: TaskStore, outcome: Outcome, parent: NodeOf, nodes: Sequence[WorkflowNode], collector: str
) -> int:
    """Write ``outcome`` (completed, under its lease token) of node ``parent`` and add ``nodes``
    after it, in one script call: the nodes without other parents in ``nodes`` follow ``parent``,
    and ``collector`` (one of ``nodes``) takes over ``parent``'s own outgoing edges, so what came
    after ``parent`` now waits for ``collector``. Returns 1 (written), 0 (rejected: a late
    writer, or the node ended already), -1 (a node id is in the run already: nothing written).
    In a run being cancelled, the outcome alone is written."""
    space = store.keys.space(parent.queue)
    locator = {n.task.id: parent.queue for n in nodes}
    await store.redis.hset(store.keys.locator, mapping=locator)  # type: ignore[arg-type,misc,unused-ignore]
    rows = _rows(nodes, {parent.node: outcome.id})
    collector_id = next(n.task.id for n in nodes if n.node == collector)
    written = await store._scripts.run(
        "wf_fan_out",
        space,
        [space.task(outcome.id), space.wf(parent.workflow_id)],
        [pack_for_lua(finish_row(outcome)), pack_for_lua(rows), parent.node, collector, collector_id],
    )
    return int(written)


async def relay_workflow_outbox(
    store: TaskStore,
    queues: Sequence[str],
    limit: int = 1000,
    before_delete: Callable[[], None] | None = None,
) -> int:
    """Deliver what workflow scripts left in the outboxes of ``queues``' spaces for other spaces
    (see _common.lua): nodes' tasks to make in their queues, nodes to cancel there, nodes' ends to
    settle in their runs' homes. Up to ``limit`` entries per space, delivered in one script call
    per target space (and a pipeline of reads), then deleted. Each delivery is idempotent and an
    entry is deleted only after it, so several relays at once, or one that dies half-way, deliver
    each effect once. Returns how many entries were delivered. ``before_delete`` (tests) is
    called between a space's deliveries and the deletion of their entries."""
    delivered = 0
    id_at, queue_at = SUBMIT_ROW.index("id"), SUBMIT_ROW.index("queue")
    # One round trip looks into every outbox (most are empty: the key does not exist).
    pipe = store.redis.pipeline(transaction=False)
    for queue in queues:
        pipe.hscan(store.keys.space(queue).wf_outbox, 0, count=limit)
    scans = await pipe.execute()
    for queue, (_cursor, found) in zip(queues, scans, strict=True):
        space = store.keys.space(queue)
        entries = list(cast("dict[bytes, bytes]", found).items())[:limit]
        if not entries:
            continue
        makes: dict[Space, list[tuple[str, Any]]] = {}
        ends: list[tuple[bytes, tuple[str, str, str, str]]] = []
        cancels: list[str] = []
        reopens: list[tuple[str, str]] = []
        for raw_field, value in entries:
            kind, workflow_id, node = _s(raw_field).split(" ", 2)
            if kind == "r":
                reopens.append((workflow_id, node))
            elif kind == "m":
                row, reason = msgpack.unpackb(value, raw=True)
                fields = msgpack.unpackb(row, raw=True)
                target = store.keys.space(_s(fields[queue_at]))
                makes.setdefault(target, []).append((_s(fields[id_at]), [row, reason]))
            elif kind == "e":
                status, _, task_id = _s(value).partition(" ")
                ends.append((raw_field, (workflow_id, node, status, task_id)))
            elif kind == "c":
                cancels.append(_s(value))
        for workflow_id, node in reopens:  # first: a node's next end is settled after its reopen
            await _reopen(store, space, workflow_id, node)
        for target, items in makes.items():
            keys = [target.task(task_id) for task_id, _ in items]
            await store._scripts.run("wf_deliver", target, keys, [pack_for_lua([d for _, d in items])])
            # A node made anew by a reopen got its id in the run's home: it is found in its queue.
            await store.redis.hset(store.keys.locator, mapping={i: target.queue for i, _ in items})  # type: ignore[misc,unused-ignore]
        held: set[bytes] = set()
        if ends:
            reopening = set(reopens)
            pipe = store.redis.pipeline(transaction=False)
            for _, (workflow_id, node, _, _) in ends:
                pipe.hexists(space.wf_outbox, f"r {workflow_id} {node}")
            pending = await pipe.execute()
            for (raw_field, (workflow_id, node, _, _)), waits in zip(ends, pending, strict=True):
                if waits and (workflow_id, node) not in reopening:
                    held.add(raw_field)  # its reopen is not delivered yet: the next pass
            await _settle_ends(store, space, [e for f, e in ends if f not in held])
        if cancels:
            await store.cancel(cancels, by="workflow")
        done = [f for f, _ in entries if f not in held]
        if before_delete is not None:
            before_delete()
        if done:
            await store.redis.hdel(space.wf_outbox, *done)  # type: ignore[misc,unused-ignore]
        delivered += len(done)
    return delivered


async def _settle_ends(store: TaskStore, space: Space, ends: Sequence[tuple[str, str, str, str]]) -> None:
    """Settle in their runs' homes the ends (run id, node, status, task id) of nodes whose tasks
    are in ``space``."""
    if not ends:
        return
    pipe = store.redis.pipeline(transaction=False)
    for workflow_id, _node, _status, task_id in ends:
        pipe.hget(store.keys.workflows, workflow_id)
        pipe.hmget(space.task(task_id), ["result", "error", "started_at", "cancel_reason"])
    answers = await pipe.execute()
    by_home: dict[str, list[tuple[str, list[Any]]]] = {}
    for k, (workflow_id, node, status, _task_id) in enumerate(ends):
        home, fields = answers[2 * k], answers[2 * k + 1]
        if home is None:
            continue  # the run is gone: nothing to settle
        by_home.setdefault(_s(home), []).append(
            (workflow_id, [workflow_id, node, status, *(f or b"" for f in fields)])
        )
    for home, items in by_home.items():
        target = store.keys.space(home)
        await store._scripts.run(
            "wf_settle", target, [target.wf(w) for w, _ in items], [pack_for_lua([e for _, e in items])]
        )


async def _reopen(store: TaskStore, space: Space, workflow_id: str, node: str) -> None:
    """Reopen run ``workflow_id`` in its home for ``node`` (its task, in ``space``, was resubmitted
    from the dead letter queue), with fresh ids for the nodes made anew."""
    home = await _queue_of(store, workflow_id)
    if home is None:
        return
    target = store.keys.space(home)
    run = await get_workflow(store, workflow_id)
    task_id = next((n.task_id for n in run.nodes if n.node == node), None) if run is not None else None
    fresh = await fresh_ids_for_resubmit(store, [task_id]) if task_id is not None else {}
    ids = [i for found in fresh.values() for i in found]
    await store._scripts.run(
        "wf_reopen", target, [target.wf(workflow_id)], [pack_for_lua(ids), workflow_id, node]
    )
