"""Writing the completion of a task that fanned out (``task.fan_out``): its new nodes and its
outcome in one script call (``jobbers.state.workflows.finish_with_fan_out``)."""

from __future__ import annotations

import dataclasses
import logging

from jobbers.errors import WorkflowGraphError
from jobbers.models.task import TaskStatus
from jobbers.state.reconnect import TRANSIENT_REDIS_ERRORS, Backoff
from jobbers.state.store import Outcome, TaskStore
from jobbers.state.workflows import finish_with_fan_out, node_of
from jobbers.workflow_nodes import WorkflowProblems, build_nodes, specs_of
from jobbers.workflows import Workflow

log = logging.getLogger(__name__)

#: The error type of a completion whose fan-out cannot be written (the task ends failed).
FAN_OUT_ERROR = "FanOutError"


def _failed(outcome: Outcome, message: str) -> Outcome:
    return dataclasses.replace(
        outcome, status=TaskStatus.FAILED, result=b"", error_type=FAN_OUT_ERROR, error_message=message
    )


async def complete_with_fan_out(store: TaskStore, outcome: Outcome, spawned: Workflow) -> Outcome | None:
    """Write completed ``outcome`` together with the nodes ``spawned`` (children, then their
    collector); ``None`` once written (or refused as a late write), else the failed outcome to
    write instead: the task is no workflow node, or what it spawned cannot run (the message says
    why). Retries while Redis is unreachable; the lease covers the task meanwhile."""
    backoff = Backoff()
    while True:
        try:
            return await _write(store, outcome, spawned)
        except TRANSIENT_REDIS_ERRORS as exc:
            await backoff.wait(log, "writing a fan-out", exc)


async def _write(store: TaskStore, outcome: Outcome, spawned: Workflow) -> Outcome | None:
    parent = await node_of(store, outcome.id)
    if parent is None:
        return _failed(outcome, "task.fan_out() is only available to a workflow node")
    home = await store.redis.hget(store.keys.workflows, parent.workflow_id)  # type: ignore[misc,unused-ignore]
    if home is not None and (home.decode() if isinstance(home, bytes) else home) != parent.queue:
        return _failed(outcome, "task.fan_out() is only available to a node in its run's first queue")
    specs = specs_of(spawned, default_queue=parent.queue)
    collector = spawned.node_ids()[spawned.tails[0]]  # merge(..., into=collector): its one exit
    prefix = parent.node + "."
    specs = [
        dataclasses.replace(
            s,
            node=prefix + s.node,
            after=tuple(prefix + p for p in s.after) or (() if s.on_error_of else (parent.node,)),
            on_error_of=tuple(prefix + p for p in s.on_error_of),
        )
        for s in specs
    ]
    if any(s.queue != parent.queue for s in specs):
        return _failed(outcome, f"a fan-out runs in its node's queue {parent.queue!r}")
    try:
        nodes = await build_nodes(parent.workflow_id, specs, require_registered=False, outside=(parent.node,))
    except WorkflowProblems as problems:
        return _failed(outcome, str(problems))
    written = await finish_with_fan_out(store, outcome, parent, nodes, prefix + collector)
    if written == -1:
        taken = WorkflowGraphError(prefix + collector, "a node id of this fan-out is in the run already")
        return _failed(outcome, str(taken))
    if written == 0:
        log.warning("late write for task %s rejected: its lease was recovered", outcome.id)
    return None
