"""The live subcommands: ``info`` (a dashboard of queues and workers, redrawn in place) and
``tail`` (task transitions as they happen). Both run until Ctrl-C, which ends them with exit 0."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import shutil
from collections.abc import Collection, Mapping, Sequence
from typing import TextIO

from jobbers.config_store import SQL_UNAVAILABLE_ERRORS
from jobbers.shell import rows
from jobbers.shell.listings import queue_overview
from jobbers.shell.output import Format, RowWriter, iso_time
from jobbers.shell.session import EXIT_OK, EXIT_UNAVAILABLE, Session, ShellError, note
from jobbers.startup import first_line, shown_redis_url
from jobbers.state.connection import TRANSIENT_REDIS_ERRORS
from jobbers.state.stats import Snapshot
from jobbers.state.store import QueueStats, TaskRef
from jobbers.state.transitions import TransitionFeed

#: ANSI: cursor home, clear the screen (the whole redraw of one frame).
CLEAR = "\x1b[H\x1b[2J"
#: Minutes of throughput the dashboard charts.
CHART_MINUTES = 15
_BARS = " ▁▂▃▄▅▆▇█"
#: Column widths of ``tail`` as a table: time, id, queue, name, from, to.
TAIL_WIDTHS = (24, 26, 16, 24, 9, 9)
#: How long ``tail`` waits for its subscription before it gives up.
SUBSCRIBE_TIMEOUT_SECONDS = 10.0


def sparkline(values: Sequence[int]) -> str:
    """One block character per value, scaled to the largest (a space for 0)."""
    top = max(values, default=0)
    if top <= 0:
        return " " * len(values)
    return "".join(_BARS[0 if v <= 0 else max(1, round(v / top * (len(_BARS) - 1)))] for v in values)


def render_frame(
    snapshot: Snapshot, control: Mapping[str, QueueStats], where: str, width: int, height: int | None = None
) -> str:
    """One frame of ``jobbers info``: queues, tasks per status, outcomes per minute, workers."""
    out = io.StringIO()
    out.write(f"jobbers info  {where}  {iso_time(_at(snapshot.now_ms))}\n\n")
    queues = RowWriter(out, Format.TABLE, rows.QUEUE_COLUMNS, rows.NUMERIC, width=width)
    for row in rows.queue_rows(_last_minutes(snapshot, rows.RATE_MINUTES), control):
        queues.write(row)
    queues.close()
    if not snapshot.queues:
        out.write("(no queues)\n")
    counts = "  ".join(f"{status} {n:,}" for status, n in rows.status_counts(snapshot))
    out.write(f"\ntasks  {counts}\n")
    totals = rows.minute_totals(snapshot)
    out.write(
        f"ended per minute, last {len(totals)} (now at the right)  [{sparkline(totals)}]"
        f"  now {totals[-1] if totals else 0:,}  max {max(totals, default=0):,}\n"
    )
    out.write(f"\nworkers: {len(snapshot.workers)} alive\n")
    if snapshot.workers:
        workers = RowWriter(out, Format.TABLE, rows.WORKER_COLUMNS, rows.NUMERIC, width=width)
        for worker in sorted(snapshot.workers, key=lambda w: (w.role, w.id)):
            workers.write(rows.worker_row(worker, snapshot.now_ms))
        workers.close()
    lines = out.getvalue().splitlines()
    if height is not None and len(lines) > height - 1:
        hidden = len(lines) - (height - 2)
        lines = [*lines[: height - 2], f"... {hidden} more lines (a taller terminal shows them)"]
    return "\n".join(lines) + "\n"


def _last_minutes(snapshot: Snapshot, minutes: int) -> Snapshot:
    """``snapshot`` with only its last ``minutes`` of throughput (for the per-queue counts)."""
    return dataclasses.replace(snapshot, throughput=snapshot.throughput[-minutes:])


def _at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


async def show_info(session: Session, out: TextIO, interval: float, live: bool) -> int:
    """Draw the dashboard every ``interval`` seconds in place (``live``), or once. A live
    dashboard outlasts an outage: it says what it cannot reach and draws again once it can."""
    where = _where(session)
    while True:
        size = shutil.get_terminal_size()
        try:
            snapshot, latency = await queue_overview(session, CHART_MINUTES)
        except (*TRANSIENT_REDIS_ERRORS, *SQL_UNAVAILABLE_ERRORS) as exc:
            if not live:
                raise
            reason = first_line(str(exc)) or type(exc).__name__
            frame = f"jobbers info  {where}\n\ncannot read the platform ({reason}); retrying\n"
        else:
            frame = render_frame(snapshot, latency, where, size.columns, size.lines if live else None)
        out.write((CLEAR if live else "") + frame)
        out.flush()
        if not live:
            return EXIT_OK
        await asyncio.sleep(interval)


def _where(session: Session) -> str:
    return f"{shown_redis_url(session.settings.redis_url)}  prefix {session.settings.redis_key_prefix}"


async def follow_transitions(session: Session, out: TextIO, fmt: Format, queues: Collection[str]) -> int:
    """Write every status change as it happens (of ``queues`` only, when given)."""
    async with TransitionFeed(session.store) as feed:
        try:
            await asyncio.wait_for(feed.subscribed.wait(), SUBSCRIBE_TIMEOUT_SECONDS)
        except TimeoutError:
            raise ShellError("could not subscribe to task transitions on Redis", EXIT_UNAVAILABLE) from None
        note("following task transitions (Ctrl-C stops)")
        writer = RowWriter(out, fmt, rows.TRANSITION_COLUMNS, widths=TAIL_WIDTHS)
        out.flush()
        dropped, reconnects = 0, 0
        while True:
            batch = await feed.next_batch()
            refs: Mapping[str, TaskRef]
            try:
                refs = await feed.identify([c.task_id for c in batch])
            except TRANSIENT_REDIS_ERRORS:
                refs = {}
            for change in batch:
                ref = refs.get(change.task_id)
                if queues and (ref is None or ref.queue not in queues):
                    continue
                writer.write(rows.transition_row(change, ref))
            out.flush()
            if feed.dropped > dropped:
                note(f"{feed.dropped - dropped} batches of transitions dropped: output too slow")
                dropped = feed.dropped
            if feed.reconnects > reconnects:
                note("reconnected to Redis; transitions while disconnected were missed")
                reconnects = feed.reconnects
