"""Platform figures for the admin overview: counts per queue and status, throughput, live workers."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query

from jobbers.manager.deps import ServicesDep
from jobbers.manager.params import UNAVAILABLE
from jobbers.manager.request_bodies import StrictJSONRoute
from jobbers.manager.schemas import QueueOverview, Stats, ThroughputMinute, WorkerInfo
from jobbers.state.stats import MAX_THROUGHPUT_MINUTES, outcomes_by_queue

router = APIRouter(tags=["overview"], route_class=StrictJSONRoute)


def _at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


@router.get("/stats", responses=UNAVAILABLE)
async def stats(
    services: ServicesDep,
    minutes: Annotated[
        int, Query(ge=1, le=MAX_THROUGHPUT_MINUTES, description="minutes of throughput, current one last")
    ] = 15,
) -> Stats:
    """Per-queue counts (ready, running, scheduled, dead-lettered), tasks per status, terminal
    outcomes per minute, and the workers that reported within the last few refresh intervals."""
    configs = {q.name: q for q in await services.config.list_queues()}
    names = sorted(set(configs) | set(await services.store.known_queues()))
    snap = await services.stats.snapshot(names, minutes)
    recent = outcomes_by_queue(snap.throughput)
    throughput = []
    for minute in snap.throughput:
        counts: dict[str, int] = {}
        for by_status in minute.by_queue.values():
            for status, n in by_status.items():
                counts[status] = counts.get(status, 0) + n
        total = sum(counts.values())
        throughput.append(ThroughputMinute(minute=_at(minute.minute_ms), counts=counts, total=total))
    return Stats(
        now=_at(snap.now_ms),
        queues=[
            QueueOverview(
                name=q.queue,
                configured=q.queue in configs,
                max_concurrent=configs[q.queue].max_concurrent if q.queue in configs else None,
                ready=q.ready,
                running=q.running,
                scheduled=q.scheduled,
                dead_lettered=q.dead_lettered,
                recent=recent.get(q.queue, {}),
            )
            for q in snap.queues
        ],
        statuses={status.value: n for status, n in snap.statuses.items()},
        dead_lettered=snap.dead_lettered,
        throughput=throughput,
        workers_alive=len(snap.workers),
        workers=[
            WorkerInfo(
                id=w.id,
                role=w.role,
                queues=w.queues,
                running=w.running,
                slots=w.slots,
                processed=w.processed,
                started_at=_at(w.first_seen_ms),
                last_seen_at=_at(w.last_seen_ms),
            )
            for w in snap.workers
        ],
    )
