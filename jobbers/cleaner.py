"""The cleaner: a one-shot maintenance pass (run from cron). Never deletes queued work."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from jobbers.lifecycle import record_recovered
from jobbers.models.task import TERMINAL_STATUSES
from jobbers.state.store import TaskStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanerOptions:
    """The cleaner's arguments, all in seconds and all optional (see the operations guide)."""

    stale_time: float | None = None
    completed_task_age: float | None = None
    dlq_age: float | None = None
    rate_limit_age: float | None = None
    min_queue_age: float | None = None
    max_queue_age: float | None = None


@dataclass
class CleanerReport:
    """What one pass did, with the ids it touched."""

    requeued: list[str] = field(default_factory=list)
    stalled: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    pruned_tasks: list[str] = field(default_factory=list)
    pruned_dead_letters: list[str] = field(default_factory=list)
    pruned_rate_limit_entries: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "requeued": len(self.requeued),
            "stalled": len(self.stalled),
            "cancelled": len(self.cancelled),
            "pruned_tasks": len(self.pruned_tasks),
            "pruned_dead_letters": len(self.pruned_dead_letters),
            "pruned_rate_limit_entries": self.pruned_rate_limit_entries,
        }


async def run_cleaner(store: TaskStore, options: CleanerOptions) -> CleanerReport:
    """Recover expired leases, stall silent tasks, prune by age; logs every id it changes."""
    report = CleanerReport()
    recovered = await store.recover_expired_leases()
    report.requeued, report.cancelled = recovered.requeued, recovered.cancelled
    report.stalled = list(recovered.stalled)
    min_ms = int(options.min_queue_age * 1000) if options.min_queue_age is not None else 0
    max_ms = int(options.max_queue_age * 1000) if options.max_queue_age is not None else 2**53
    hung = await store.stall_silent_tasks(options.stale_time, min_ms, max_ms)
    report.stalled += hung
    await record_recovered(store, recovered, hung)
    now_ms = await store.redis_time_ms()
    if options.completed_task_age is not None:
        cutoff = now_ms - int(options.completed_task_age * 1000)
        for status in sorted(TERMINAL_STATUSES):
            report.pruned_tasks += await store.prune_terminal(status, cutoff)
    if options.dlq_age is not None:
        report.pruned_dead_letters = await store.prune_dead_letters(now_ms - int(options.dlq_age * 1000))
    if options.rate_limit_age is not None:
        report.pruned_rate_limit_entries = await store.prune_rate_limits(
            now_ms - int(options.rate_limit_age * 1000)
        )
    for label, ids in (
        ("re-queued after lease expiry", report.requeued),
        ("marked stalled", report.stalled),
        ("cancelled after lease expiry", report.cancelled),
        ("pruned terminal tasks", report.pruned_tasks),
        ("pruned dead letters", report.pruned_dead_letters),
    ):
        if ids:
            log.info("%s: %d %s", label, len(ids), ids)
    log.info("cleaner done: %s", report.counts())
    return report
