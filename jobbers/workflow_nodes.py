"""Validated workflow nodes from a graph's description: one path for the Python builder, the REST
API (``POST /workflows``) and recurring entries that fire a workflow.

``NodeSpec`` is a node as described (task, params, edges); ``build_nodes`` checks every node (its
task is registered when required, its params fit the task, its queue exists) and then the graph
(``check_graph``: no cycle, no edge from an unknown node), and reports each problem
with the index of its node, so nothing is written unless the whole run can start.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobbers.config_store import queue_not_found
from jobbers.errors import InvalidParamsError, JobbersError, UnknownTaskError, WorkflowGraphError
from jobbers.json_values import check_params
from jobbers.models.queue_config import DEFAULT_QUEUE
from jobbers.models.task import MAX_PRIORITY, MIN_PRIORITY, is_priority
from jobbers.registry import find_task_config, validate_params
from jobbers.state.workflows import WorkflowNode, check_graph
from jobbers.task_builder import build_new_task
from jobbers.workflows import Workflow


@dataclass(frozen=True)
class NodeSpec:
    """One node as described: its id, its task and params, and the nodes it waits for.

    ``after`` are its success edges (it runs once they all completed), ``on_error_of`` its error
    edges (it runs when they failed or stalled); ``results_param`` / ``error_param`` name the
    params it is given its parents' results / the failed parent's error in.
    """

    node: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    queue: str = DEFAULT_QUEUE
    priority: int | None = None
    after: tuple[str, ...] = ()
    on_error_of: tuple[str, ...] = ()
    results_param: str | None = None
    error_param: str | None = None


@dataclass(frozen=True)
class NodeProblem:
    """Why node ``index`` cannot run: ``field`` of it (``name``, ``params``, ``queue``, ``after`` ...)."""

    index: int
    field: str
    error: JobbersError


class WorkflowProblems(JobbersError):
    """Every problem found in a workflow's nodes (``problems``), none of it written."""

    def __init__(self, problems: Sequence[NodeProblem]) -> None:
        super().__init__("; ".join(str(p.error) for p in problems))
        self.problems = list(problems)


def node_spec(node: Mapping[str, Any]) -> NodeSpec:
    """A node as ``POST /workflows`` takes it (``id``, ``name``, ``version``, ``queue``, ``params``,
    ``priority``, ``after``, ``on_error_of``, ``results_param``, ``error_param``), as a ``NodeSpec``."""
    return NodeSpec(
        node=node["id"],
        name=node["name"],
        params=dict(node.get("params") or {}),
        version=node.get("version", 1),
        queue=node.get("queue") or DEFAULT_QUEUE,
        priority=node.get("priority"),
        after=tuple(node.get("after") or ()),
        on_error_of=tuple(node.get("on_error_of") or ()),
        results_param=node.get("results_param"),
        error_param=node.get("error_param"),
    )


def spec_json(spec: NodeSpec) -> dict[str, Any]:
    """``spec`` as ``POST /workflows`` takes a node (what ``node_spec`` reads back)."""
    out: dict[str, Any] = {"id": spec.node, "name": spec.name, "version": spec.version, "queue": spec.queue,
                           "params": dict(spec.params), "after": list(spec.after),
                           "on_error_of": list(spec.on_error_of)}  # fmt: skip
    for key, value in (("priority", spec.priority), ("results_param", spec.results_param),
                       ("error_param", spec.error_param)):  # fmt: skip
        if value is not None:
            out[key] = value
    return out


def specs_of(run: Workflow, default_queue: str = DEFAULT_QUEUE) -> list[NodeSpec]:
    """The nodes of a run built with ``jobbers.workflows`` (its node ids as ``node_ids`` gives them;
    a step without a queue in ``default_queue``)."""
    ids = run.node_ids()
    parents: dict[int, list[tuple[str, bool]]] = {id(s): [] for s in run.steps}
    for edge in run.edges:
        parents[id(edge.child)].append((ids[edge.parent], edge.error))
    return [
        NodeSpec(
            node=ids[step],
            name=step.name,
            params=dict(step.params),
            version=step.version,
            queue=step.queue or default_queue,
            priority=step.priority,
            after=tuple(p for p, error in parents[id(step)] if not error),
            on_error_of=tuple(p for p, error in parents[id(step)] if error),
            results_param=step.results_param,
            error_param=step.error_param,
        )
        for step in run.steps
    ]


def _node_error(spec: NodeSpec, exc: JobbersError) -> JobbersError:
    """``exc`` with the node named in its message (``node 'b': ...``)."""
    return type(exc)(f"node {spec.node!r}: {exc}")


async def build_nodes(
    workflow_id: str,
    specs: Sequence[NodeSpec],
    *,
    require_registered: bool,
    queue_exists: Callable[[str], Awaitable[bool]] | None = None,
    trace: str = "",
    recurring_key: str | None = None,
    recurring_at_ms: int | None = None,
    outside: Collection[str] = (),
    task_id_of: Callable[[str], str] | None = None,
) -> list[WorkflowNode]:
    """The nodes of run ``workflow_id``; raises ``WorkflowProblems`` naming every node at fault.

    A task this process does not know is refused when ``require_registered`` (the manager),
    taken as given otherwise (a producer that does not import its tasks). A node's
    ``results_param`` / ``error_param`` counts as given when its params are checked: it is
    filled in when the node runs. ``queue_exists`` (when given) is asked about each queue once.
    ``outside``: nodes already in the run that edges may come from (a fan-out's parent).
    ``task_id_of``: each node's task id from its node id (a recurring fire's ids are derived from
    the entry and the fire time); fresh ids by default.
    """
    problems: list[NodeProblem] = []
    nodes: list[WorkflowNode] = []
    known_queues: dict[str, bool] = {}
    for index, spec in enumerate(specs):
        config = find_task_config(spec.name, spec.version)
        if config is None and require_registered:
            problems.append(
                NodeProblem(index, "name", UnknownTaskError(
                    f"node {spec.node!r}: no task {spec.name!r} version {spec.version} is registered"
                ))
            )  # fmt: skip
            continue
        if queue_exists is not None:
            if spec.queue not in known_queues:
                known_queues[spec.queue] = await queue_exists(spec.queue)
            if not known_queues[spec.queue]:
                problems.append(NodeProblem(index, "queue", _node_error(spec, queue_not_found(spec.queue))))
        if spec.priority is not None and not is_priority(spec.priority):
            problems.append(NodeProblem(index, "priority", InvalidParamsError(
                f"node {spec.node!r}: priority must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY}"
            )))  # fmt: skip
            continue
        filled: dict[str, Any] = {p: {} for p in (spec.results_param, spec.error_param) if p}
        try:
            check_params(spec.params)
            if config is not None:
                validate_params(config, {**spec.params, **filled})
            task = build_new_task(
                config,
                spec.name,
                dict(spec.params),
                version=spec.version,
                queue=spec.queue,
                trace=trace,
                priority=spec.priority,
                recurring_key=recurring_key,
                recurring_at_ms=recurring_at_ms,
                task_id=task_id_of(spec.node) if task_id_of is not None else None,
            )
        except InvalidParamsError as exc:
            problems.append(NodeProblem(index, "params", _node_error(spec, exc)))
            continue
        task = dataclasses.replace(task, workflow_id=workflow_id, workflow_node=spec.node)
        nodes.append(
            WorkflowNode(
                node=spec.node,
                task=task,
                after=spec.after,
                on_error_of=spec.on_error_of,
                results_param=spec.results_param,
                error_param=spec.error_param,
            )
        )
    if problems:
        raise WorkflowProblems(problems)
    try:
        check_graph(nodes, outside)
    except WorkflowGraphError as exc:
        index = next((i for i, s in enumerate(specs) if s.node == exc.node), 0)
        raise WorkflowProblems([NodeProblem(index, exc.field, exc)]) from None
    return nodes
