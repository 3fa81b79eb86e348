"""Reporting what was taken back from workers (by the scheduler's lease recovery and the cleaner)."""

from __future__ import annotations

from collections.abc import Sequence

from jobbers import telemetry
from jobbers.state.store import RecoverResult, TaskStore

#: How far ahead of expiry a sweep looks for leases whose worker stopped renewing (two renewal
#: intervals, a third of a lease, without renewal): leases up to three hours long are covered.
DEATH_HORIZON_SECONDS = 3600.0


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
