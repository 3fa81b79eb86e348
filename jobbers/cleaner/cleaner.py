"""One cleaner pass: recover dead workers' tasks, stall silent tasks, prune by age (the audit log too).

Recovery runs first and the stale-heartbeat rule spares a task whose worker stopped renewing its
lease: a dead worker's task is re-queued (within its ``max_stalls``), never stalled as hung."""

from __future__ import annotations

import logging

from jobbers.cleaner.decisions import CleanerOptions, CleanerReport, cutoffs, submission_bounds
from jobbers.models.task import TERMINAL_STATUSES
from jobbers.recovery import DEATH_HORIZON_SECONDS, record_recovered
from jobbers.state.events import EventLog
from jobbers.state.reconnect import TRANSIENT_REDIS_ERRORS, is_out_of_memory
from jobbers.state.store import TaskStore

log = logging.getLogger(__name__)


async def run_cleaner(store: TaskStore, options: CleanerOptions) -> CleanerReport:
    """Recover expired leases, stall silent tasks, prune by age; logs every id it changes."""
    report = CleanerReport()
    try:
        recovered = await store.recover_expired_leases(horizon_seconds=DEATH_HORIZON_SECONDS)
        report.requeued, report.cancelled = recovered.requeued, recovered.cancelled
        report.stalled = list(recovered.stalled)
        hung = await store.stall_silent_tasks(options.stale_time, *submission_bounds(options))
        report.stalled += hung
        await record_recovered(store, recovered, hung)
    except TRANSIENT_REDIS_ERRORS as exc:
        # Refused whole while Redis is out of memory (OOM_RULES); pruning, which frees memory, is not.
        if not is_out_of_memory(exc):
            raise
        log.warning("Redis is out of memory (%s): no lease recovered, no task stalled; pruning goes on", exc)
    cut = cutoffs(options, await store.redis_time_ms())
    if cut.terminal_before_ms is not None:
        for status in sorted(TERMINAL_STATUSES):
            report.pruned_tasks += await store.prune_terminal(status, cut.terminal_before_ms)
    if cut.dead_letters_before_ms is not None:
        report.pruned_dead_letters = await store.prune_dead_letters(cut.dead_letters_before_ms)
    if cut.rate_entries_before_ms is not None:
        report.pruned_rate_limit_entries = await store.prune_rate_limits(cut.rate_entries_before_ms)
    if cut.audit_events_before_ms is not None:
        report.pruned_audit_events = await EventLog(store).trim(cut.audit_events_before_ms)
        if report.pruned_audit_events:
            age, pruned = options.audit_age, report.pruned_audit_events
            log.info("pruned audit log events older than %.0f s: %d", age, pruned)
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
