"""Build workflow runs from registered tasks: ``chain``, ``group``, ``merge`` and ``.then``.

    run = chain(a.s(x=1), b.s(), c.s())
    run = a.s().then(b.s(), on_error=notify.s().errors("err"))
    run = merge(b.s(), c.s(), into=d.s().results("parents"))
    outcome = await client.submit_workflow(run, name="nightly")

``task.s(**params)`` (on every ``@register_task`` function, or ``signature(name, **params)``) is a
one-node workflow. ``a.then(b)`` runs ``b`` after every exit node of ``a`` completed; with
``on_error=h``, ``h`` runs instead when one of them fails or stalls after its retries (and is
cancelled otherwise). ``group`` runs its parts side by side; ``chain`` one after another; ``merge``
runs ``into`` once, after all of its parts completed. ``.results(param)`` gives a node its parents'
results as ``{parent node id: result}`` in ``param``; ``.errors(param)`` gives an error-edge node
the failed parent's ``{node, task_id, status, error}``. Node ids default to the task name (``name``,
``name-2`` ... when it repeats); ``.named(id)`` chooses one. Every step is settled in Redis inside
the script that ends a node (``jobbers.state.workflows``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Step:
    """One node to be: a task, its params and options, and the node's own settings."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    queue: str | None = None
    priority: int | None = None
    node_id: str | None = None
    results_param: str | None = None
    error_param: str | None = None


@dataclass(eq=False)
class Edge:
    parent: Step
    child: Step
    error: bool = False


class Workflow:
    """A graph of steps: its entry steps (no parents inside it) and exit steps (what ``then`` follows)."""

    def __init__(
        self, steps: Sequence[Step], edges: Sequence[Edge], heads: Sequence[Step], tails: Sequence[Step]
    ):
        self.steps = list(steps)
        self.edges = list(edges)
        self.heads = list(heads)
        self.tails = list(tails)

    def then(self, *nexts: Workflow, on_error: Workflow | None = None) -> Workflow:
        """Run ``nexts`` (side by side) after this; ``on_error`` when one of this part's exits fails."""
        following = group(*nexts) if nexts else None
        steps, edges = list(self.steps), list(self.edges)
        tails = list(self.tails)
        if following is not None:
            steps += following.steps
            edges += following.edges
            edges += [Edge(t, h) for t in self.tails for h in following.heads]
            tails = list(following.tails)
        if on_error is not None:
            steps += on_error.steps
            edges += on_error.edges
            edges += [Edge(t, h, error=True) for t in self.tails for h in on_error.heads]
        return Workflow(steps, edges, self.heads, tails)

    def _only(self) -> Step:
        if len(self.steps) != 1:
            raise ValueError("results(), errors() and named() apply to a single task's step (task.s())")
        return self.steps[0]

    def results(self, param: str) -> Workflow:
        """Give this step its parents' results, ``{parent node id: result}``, as ``param``."""
        self._only().results_param = param
        return self

    def errors(self, param: str) -> Workflow:
        """Give this (error-edge) step the failed parent's ``{node, task_id, status, error}`` as ``param``."""
        self._only().error_param = param
        return self

    def named(self, node_id: str) -> Workflow:
        """Choose this step's node id."""
        self._only().node_id = node_id
        return self

    def node_ids(self) -> dict[Step, str]:
        """Each step's node id: its own, else its task name (``-2``, ``-3`` ... when it repeats)."""
        ids: dict[Step, str] = {}
        used = {s.node_id for s in self.steps if s.node_id}
        counts: dict[str, int] = {}
        for s in self.steps:
            if s.node_id:
                ids[s] = s.node_id
                continue
            n = counts.get(s.name, 0) + 1
            candidate = s.name if n == 1 else f"{s.name}-{n}"
            while candidate in used:
                n += 1
                candidate = f"{s.name}-{n}"
            counts[s.name] = n
            used.add(candidate)
            ids[s] = candidate
        return ids


def signature(
    name: str, version: int = 1, *, queue: str | None = None, priority: int | None = None, **params: Any
) -> Workflow:
    """A one-step workflow running task ``name`` with ``params`` (what ``task.s(**params)`` makes)."""
    step = Step(name=name, params=params, version=version, queue=queue, priority=priority)
    return Workflow([step], [], [step], [step])


def group(*parts: Workflow) -> Workflow:
    """``parts`` side by side."""
    if not parts:
        raise ValueError("group() needs at least one part")
    return Workflow(
        [s for p in parts for s in p.steps],
        [e for p in parts for e in p.edges],
        [s for p in parts for s in p.heads],
        [s for p in parts for s in p.tails],
    )


def chain(*parts: Workflow) -> Workflow:
    """``parts`` one after another."""
    if not parts:
        raise ValueError("chain() needs at least one part")
    run = parts[0]
    for p in parts[1:]:
        run = run.then(p)
    return run


def merge(*parts: Workflow, into: Workflow) -> Workflow:
    """``parts`` side by side, then ``into`` once, after all of them completed."""
    return group(*parts).then(into)
