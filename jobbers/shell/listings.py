"""What the reading subcommands do: ``tasks``, ``export``, ``show``, ``dlq`` (listing), ``queues`` and
``workers``. Each reads through the state layer's own listings and writes rows as they come."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from jobbers.models.task import TaskStatus
from jobbers.shell import rows
from jobbers.shell.output import Format, RowWriter
from jobbers.shell.session import EXIT_NOT_DONE, EXIT_OK, Session, note
from jobbers.state.events import EventLog
from jobbers.state.queries import TaskFilter
from jobbers.state.stats import Snapshot
from jobbers.state.store import QueueStats
from jobbers.state.walks import WALK_PAGE, walk_by_status, walk_dead_letters
from jobbers.task_json import item_json


def _page_size(limit: int) -> int:
    return min(limit, WALK_PAGE) if limit > 0 else WALK_PAGE


async def list_tasks(
    session: Session,
    out: TextIO,
    fmt: Format,
    statuses: Sequence[TaskStatus],
    filters: TaskFilter,
    limit: int,
) -> int:
    """Every task matching (the first ``limit`` when > 0), one a line; ``jsonl`` lines are whole
    records as ``/task-status`` shows them (what ``export`` writes)."""
    writer = RowWriter(out, fmt, rows.TASK_COLUMNS, rows.NUMERIC, table_columns=rows.TASK_TABLE_COLUMNS)
    walk = walk_by_status(session.queries, statuses, filters, _page_size(limit))
    async for item in walk:
        line = item_json(item.task).decode() if fmt is Format.JSONL else None
        writer.write(rows.task_row(item), line)
        if limit > 0 and writer.rows >= limit:
            break
    writer.close()
    return EXIT_OK


async def show_tasks(session: Session, out: TextIO, fmt: Format, task_ids: Sequence[str]) -> int:
    """The whole record of each task: params, result, error, its history of attempts and its
    events (``GET /tasks/{id}/events``), oldest first."""
    found = await session.store.fetch_tasks(task_ids)
    missing = [i for i, t in zip(task_ids, found, strict=True) if t is None]
    writer = RowWriter(out, Format.TSV, ("id", "field", "value")) if fmt is Format.TSV else None
    log = EventLog(session.store)
    for n, task in enumerate(t for t in found if t is not None):
        shown = json.loads(item_json(task))
        shown["events"] = [e.model_dump(mode="json") for e in await log.task_events(task.id) or []]
        if fmt is Format.JSONL:
            out.write(json.dumps(shown, ensure_ascii=False, separators=(",", ":")) + "\n")
            continue
        fields = rows.task_fields(shown)
        if writer is not None:
            for field, text in fields:
                writer.write({"id": task.id, "field": field, "value": text})
            continue
        if n:
            out.write("\n")
        _write_record(out, fields)
    out.flush()
    for task_id in missing:
        note(f"no task {task_id}")
    return EXIT_NOT_DONE if missing else EXIT_OK


def _write_record(out: TextIO, fields: Sequence[tuple[str, str]]) -> None:
    width = max(len(field) for field, _ in fields)
    for field, text in fields:
        lines = text.split("\n") or [""]
        out.write(f"{field.ljust(width)}  {lines[0]}".rstrip() + "\n")
        for line in lines[1:]:
            out.write(f"{' ' * width}  {line}".rstrip() + "\n")


async def list_dead_letters(
    session: Session, out: TextIO, fmt: Format, filters: TaskFilter, limit: int
) -> int:
    """Dead letters matching, oldest first; ``jsonl`` lines are whole records."""
    writer = RowWriter(
        out, fmt, rows.DEAD_LETTER_COLUMNS, rows.NUMERIC, table_columns=rows.DEAD_LETTER_TABLE_COLUMNS
    )
    async for page in walk_dead_letters(session.queries, filters, _page_size(limit)):
        for item in page.items:
            line = item_json(item.task).decode() if fmt is Format.JSONL else None
            writer.write(rows.dead_letter_row(item), line)
            if limit > 0 and writer.rows >= limit:
                writer.close()
                return EXIT_OK
    writer.close()
    return EXIT_OK


async def queue_overview(session: Session, minutes: int) -> tuple[Snapshot, dict[str, QueueStats]]:
    """Counts of every queue (configured, or that ever held a task), ``minutes`` of throughput, the
    live workers, and each queue's control state (paused, blocked tasks, oldest ready task's age)."""
    config, _ = session.require_config()
    names = sorted({q.name for q in await config.list_queues()} | set(await session.store.known_queues()))
    snapshot = await session.stats.snapshot(names, minutes)
    control = {s.queue: s for s in await session.store.queue_stats(names)} if names else {}
    return snapshot, control


async def list_queues(session: Session, out: TextIO, fmt: Format) -> int:
    """One line per queue: waiting, scheduled, running, dead-lettered, latency, recent outcomes."""
    snapshot, latency = await queue_overview(session, rows.RATE_MINUTES)
    writer = RowWriter(out, fmt, rows.QUEUE_COLUMNS, rows.NUMERIC)
    for row in rows.queue_rows(snapshot, latency):
        writer.write(row)
    writer.close()
    return EXIT_OK


async def list_workers(session: Session, out: TextIO, fmt: Format) -> int:
    """One line per live worker (one whose last report has not expired)."""
    snapshot = await session.stats.snapshot([], 1)
    writer = RowWriter(out, fmt, rows.WORKER_COLUMNS, rows.NUMERIC)
    for worker in sorted(snapshot.workers, key=lambda w: (w.role, w.id)):
        writer.write(rows.worker_row(worker, snapshot.now_ms))
    writer.close()
    return EXIT_OK
