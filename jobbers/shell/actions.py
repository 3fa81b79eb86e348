"""What the acting subcommands do: ``cancel``, ``resubmit`` and ``dlq --resubmit|--purge``.

Each writes one row per task (``id``, ``outcome``, ``status`` now) and exits 1 when any task was
not found or refused the action; the others were still acted on. They go through the same
functions as the REST API (``TaskStore.cancel``, ``jobbers.dead_letters``), in chunks of
``CHUNK`` ids per round trip.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TextIO

from jobbers import dead_letters, telemetry
from jobbers.models.outcomes import ResubmitKind
from jobbers.shell import rows
from jobbers.shell.output import Format, RowWriter
from jobbers.shell.session import EXIT_NOT_DONE, EXIT_OK, Session
from jobbers.state.queries import TaskFilter
from jobbers.state.walks import WALK_PAGE, walk_dead_letters

#: Ids per round trip of an action.
CHUNK = 500
#: The outcome of a purged dead letter (``not_found`` when it had left the DLQ meanwhile).
REMOVED = "removed"
NOT_FOUND = "not_found"


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


async def cancel_tasks(session: Session, out: TextIO, fmt: Format, task_ids: Sequence[str]) -> int:
    """Cancel tasks: queued or scheduled ones at once; a running one is stopped by its worker."""
    writer = RowWriter(out, fmt, rows.OUTCOME_COLUMNS)
    refused = 0
    for chunk in _chunks(task_ids):
        outcomes = await session.store.cancel(chunk, by="jobbers shell")
        telemetry.record_cancellations(outcomes)
        for o in outcomes:
            writer.write(rows.outcome_row(o.id, o.outcome.value, o.status))
            refused += not o.outcome.accepted
    writer.close()
    return EXIT_NOT_DONE if refused else EXIT_OK


async def resubmit_tasks(
    session: Session, out: TextIO, fmt: Format, task_ids: Sequence[str], reset_retry_count: bool
) -> int:
    """Put dead-lettered tasks back on their queues (a task not in the DLQ is ``not_found``)."""
    _, queues = session.require_config()
    writer = RowWriter(out, fmt, rows.OUTCOME_COLUMNS)
    refused = 0
    for chunk in _chunks(task_ids):
        for o in await dead_letters.resubmit_dead_letters(session.store, queues, chunk, reset_retry_count):
            writer.write(rows.outcome_row(o.id, o.outcome.value, o.status))
            refused += o.outcome != ResubmitKind.RESUBMITTED
    writer.close()
    return EXIT_NOT_DONE if refused else EXIT_OK


async def act_on_dead_letters(
    session: Session,
    out: TextIO,
    fmt: Format,
    filters: TaskFilter,
    limit: int,
    *,
    purge: bool,
    reset_retry_count: bool = False,
) -> int:
    """Resubmit (or, with ``purge``, remove) every dead letter matching, page by page.

    Only entries dead-lettered before the command started are acted on, so a resubmitted task
    that fails again at once is not resubmitted again by the same command.
    """
    queues = None if purge else session.require_config()[1]
    started_ms = await session.store.redis_time_ms()
    writer = RowWriter(out, fmt, rows.OUTCOME_COLUMNS)
    refused = 0
    page_size = min(limit, WALK_PAGE) if limit > 0 else WALK_PAGE
    async for page in walk_dead_letters(session.queries, filters, page_size):
        items = [item for item in page.items if item.score_ms <= started_ms]
        if limit > 0:
            items = items[: limit - writer.rows]
        ids = [item.task.id for item in items]
        if purge:
            removed = set(await dead_letters.remove_dead_letters(session.store, ids))
            for item in items:
                gone = item.task.id in removed
                writer.write(rows.outcome_row(item.task.id, REMOVED if gone else NOT_FOUND, item.task.status))
                refused += not gone
        else:
            assert queues is not None
            known = [item.task for item in items]
            for o in await dead_letters.resubmit_dead_letters(
                session.store, queues, ids, reset_retry_count, known
            ):
                writer.write(rows.outcome_row(o.id, o.outcome.value, o.status))
                refused += o.outcome != ResubmitKind.RESUBMITTED
        if len(items) < len(page.items) or (limit > 0 and writer.rows >= limit):
            break
    writer.close()
    return EXIT_NOT_DONE if refused else EXIT_OK
