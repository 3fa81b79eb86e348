"""Small helpers shared by the processes (worker, scheduler, cleaner, manager)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from jobbers import telemetry
from jobbers.state.store import RecoverResult, TaskStore

log = logging.getLogger(__name__)


async def settle(tasks: list[asyncio.Task[None]], seconds: float = 2.0) -> None:
    """Wait for cancelled background tasks to finish, but never let one hold up the exit."""
    for t in tasks:
        t.cancel()
    _done, stuck = await asyncio.wait(tasks, timeout=seconds)
    for t in stuck:
        log.warning("background task %s did not stop within %.1fs", t.get_name(), seconds)


async def record_recovered(store: TaskStore, recovered: RecoverResult, hung: Sequence[str] = ()) -> None:
    """Count recovered leases (and ``hung`` tasks stalled for a silent heartbeat) in the stall and
    dead-letter metrics. Costs a round trip only when something was recovered."""
    groups = (
        ("requeued", recovered.requeued),
        ("stalled", recovered.stalled),
        ("cancelled", recovered.cancelled),
        ("hung", hung),
    )
    ids = [task_id for _, group in groups for task_id in group]
    if not ids:
        return
    refs = await store.task_refs(ids)
    for outcome, group in groups:
        telemetry.record_stalls(outcome, [refs[i] for i in group if i in refs])
