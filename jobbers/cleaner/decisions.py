"""The cleaner's options, what a pass reports, and the pure arithmetic of its cut-offs."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Latest submission time when ``--max-queue-age`` is not given (ms; beyond any real clock).
NO_UPPER_BOUND_MS = 2**53


@dataclass(frozen=True)
class CleanerOptions:
    """The cleaner's arguments, all in seconds and all optional (see the operations guide)."""

    stale_time: float | None = None
    completed_task_age: float | None = None
    dlq_age: float | None = None
    rate_limit_age: float | None = None
    min_queue_age: float | None = None
    max_queue_age: float | None = None
    #: Audit log events older than this are removed (``AUDIT_MAX_AGE_SECONDS`` unless given).
    audit_age: float | None = None


@dataclass
class CleanerReport:
    """What one pass did, with the ids it touched."""

    requeued: list[str] = field(default_factory=list)
    stalled: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    pruned_tasks: list[str] = field(default_factory=list)
    pruned_dead_letters: list[str] = field(default_factory=list)
    pruned_rate_limit_entries: int = 0
    pruned_audit_events: int = 0

    def counts(self) -> dict[str, int]:
        """How many of each (what ``jobbers_cleaner`` prints)."""
        return {
            "requeued": len(self.requeued),
            "stalled": len(self.stalled),
            "cancelled": len(self.cancelled),
            "pruned_tasks": len(self.pruned_tasks),
            "pruned_dead_letters": len(self.pruned_dead_letters),
            "pruned_rate_limit_entries": self.pruned_rate_limit_entries,
            "pruned_audit_events": self.pruned_audit_events,
        }


@dataclass(frozen=True)
class Cutoffs:
    """The age options as epoch milliseconds of Redis time (``None``: that step is skipped)."""

    terminal_before_ms: int | None
    dead_letters_before_ms: int | None
    rate_entries_before_ms: int | None
    audit_events_before_ms: int | None


def _before(now_ms: int, age: float | None) -> int | None:
    return None if age is None else now_ms - int(age * 1000)


def cutoffs(options: CleanerOptions, now_ms: int) -> Cutoffs:
    """The age cut-offs of a pass run at ``now_ms``: "older than this age" becomes "before this time"."""
    return Cutoffs(
        terminal_before_ms=_before(now_ms, options.completed_task_age),
        dead_letters_before_ms=_before(now_ms, options.dlq_age),
        rate_entries_before_ms=_before(now_ms, options.rate_limit_age),
        audit_events_before_ms=_before(now_ms, options.audit_age),
    )


def submission_bounds(options: CleanerOptions) -> tuple[int, int]:
    """The submission times (ms) stall detection looks at, from ``--min/max-queue-age`` (epoch seconds)."""
    low = int(options.min_queue_age * 1000) if options.min_queue_age is not None else 0
    high = int(options.max_queue_age * 1000) if options.max_queue_age is not None else NO_UPPER_BOUND_MS
    return low, high
