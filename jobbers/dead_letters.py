"""Acting on dead letters: the one implementation behind the REST API and the ``jobbers`` command.

Resubmitting needs what only the queue configuration knows (a task whose queue was deleted since
it was dead-lettered must stay put: no worker would run it), so it lives here, over the state and
config stores, rather than in either door.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from jobbers.config_store import QueueDirectory
from jobbers.models.outcomes import ResubmitKind
from jobbers.models.task import Task, TaskStatus
from jobbers.state.queries import TaskFilter, TaskQueries
from jobbers.state.store import TaskStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resubmitted:
    """What a resubmit did to one task, and its status now (None for an unknown id)."""

    id: str
    outcome: ResubmitKind
    status: TaskStatus | None


async def matching_dead_letters(queries: TaskQueries, filters: TaskFilter, limit: int) -> list[Task]:
    """The first ``limit`` dead letters matching ``filters``, oldest first (following page cursors)."""
    found: list[Task] = []
    cursor: str | None = None
    while len(found) < limit:
        page = await queries.list_dead_letters(filters, limit - len(found), cursor)
        found += [item.task for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    return found


async def resubmit_dead_letters(
    store: TaskStore,
    queues: QueueDirectory,
    task_ids: Sequence[str],
    reset_retry_count: bool,
    known: Sequence[Task] = (),
) -> list[Resubmitted]:
    """Put dead letters back on their queues, one outcome per id in order (ids once each).

    A task whose queue no longer exists stays in the DLQ (``queue_not_found``). ``known`` are
    records the caller already read (a listing's page), so they are not read again.
    """
    ids = list(dict.fromkeys(task_ids))
    tasks = {t.id: t for t in known}
    missing = [i for i in ids if i not in tasks]
    if missing:
        tasks.update((t.id, t) for t in await store.get_tasks(missing))
    results: dict[str, Resubmitted] = {}
    for task_id in ids:
        task = tasks.get(task_id)
        if task is not None and not await queues.exists(task.queue):
            results[task_id] = Resubmitted(task_id, ResubmitKind.QUEUE_NOT_FOUND, task.status)
    outcomes = await store.resubmit_dead_letters([i for i in ids if i not in results], reset_retry_count)
    for o in outcomes:
        results[o.id] = Resubmitted(o.id, o.outcome, TaskStatus(o.status) if o.status else None)
    resubmitted = [o.id for o in outcomes if o.outcome == ResubmitKind.RESUBMITTED]
    if resubmitted:
        log.info("resubmitted %d dead letters: %s", len(resubmitted), " ".join(resubmitted))
    return [results[i] for i in ids]


async def remove_dead_letters(store: TaskStore, task_ids: Sequence[str]) -> list[str]:
    """Remove DLQ entries (the records stay until pruned); returns the ids that were in the DLQ."""
    removed = await store.remove_dead_letters(list(dict.fromkeys(task_ids)))
    if removed:
        log.info("removed %d dead letters: %s", len(removed), " ".join(removed))
    return removed
