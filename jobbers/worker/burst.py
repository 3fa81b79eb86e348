"""Burst mode (``jobbers_worker --burst``, ``WORKER_BURST=1``): run what is there, then exit 0.

A burst worker claims like any worker. Whenever a claim leaves slots free (its queues hold
nothing it may start now) it *sweeps* its role's queues itself, as a scheduler would, since a
cron-only deployment may have none: it promotes their due scheduled tasks (delayed submits and
retries) and recovers expired leases (a killed worker's tasks, a killed burst run's included).
Both are the scheduler's own atomic scripts, so any number of burst workers and schedulers may
sweep at once. It exits once, at the same moment:

- none of its own tasks is running and every outcome it produced is written;
- the sweep promoted and recovered nothing, and no ready task waits in its queues (one held
  back only by a queue's ``max_concurrent`` or rate limit is waited for);
- no scheduled task of its queues is due within ``DUE_HORIZON_SECONDS`` (a retry due sooner is
  waited for and run; one due later is left for the next run, or a scheduler).

A task started by another worker is not waited for. With ``--max-seconds`` (or
``WORKER_BURST_MAX_SECONDS``) it stops claiming after that long and lets its running tasks finish,
as at ``WORKER_TTL``; a burst worker counts ``WORKER_TTL`` only when it is set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from jobbers import telemetry
from jobbers.models.queue_config import QueueConfig
from jobbers.recovery import record_recovered
from jobbers.settings import Settings
from jobbers.state.reconnect import TRANSIENT_REDIS_ERRORS, Backoff
from jobbers.state.store import TaskStore

log = logging.getLogger(__name__)

#: A scheduled task due within this many seconds is waited for; one due later is left for the
#: next burst run.
DUE_HORIZON_SECONDS = 5.0
#: Scheduled tasks promoted per script call while sweeping (it loops while calls come back full).
PROMOTE_BATCH = 500
#: While only its own outcomes are still being written, look again this soon.
SETTLING_RECHECK_SECONDS = 0.02
#: While its own tasks run, it sweeps at most this often (a task ending wakes it anyway).
BUSY_SWEEP_SECONDS = 0.5


@dataclass(frozen=True)
class Sweep:
    """What one sweep of a burst worker's queues found and did."""

    promoted: int
    recovered: int
    ready: int
    #: How long until the soonest scheduled task of the queues is due (ms; None: none is scheduled).
    next_due_in_ms: int | None


def next_wait(sweep: Sweep, limited_recheck: float, horizon: float = DUE_HORIZON_SECONDS) -> float | None:
    """Seconds to wait before claiming again after ``sweep``, or None when the run is over.

    Called only once the worker's own tasks are settled (nothing running, nothing unwritten).
    """
    if sweep.promoted or sweep.recovered:
        return 0.0  # work just became ready: claim it now
    if sweep.ready:
        return limited_recheck  # held back by a limit (or claimed by another worker meanwhile)
    if sweep.next_due_in_ms is not None and sweep.next_due_in_ms <= horizon * 1000:
        return max(sweep.next_due_in_ms / 1000, 0.001)
    return None


class BurstRun:
    """The clock and the sweeps of one burst run."""

    def __init__(self, settings: Settings, store: TaskStore) -> None:
        self.store = store
        self.started = time.monotonic()
        self.max_seconds = settings.worker_burst_max_seconds or None
        self._next_sweep = 0.0
        self._backoff = Backoff()

    def out_of_time(self) -> bool:
        """Whether ``--max-seconds`` has passed."""
        return self.max_seconds is not None and time.monotonic() - self.started >= self.max_seconds

    def capped(self, seconds: float) -> float:
        """``seconds``, but no further than the end of ``--max-seconds``."""
        if self.max_seconds is None:
            return seconds
        return max(min(seconds, self.started + self.max_seconds - time.monotonic()), 0.0)

    async def when_idle(
        self, queues: Sequence[QueueConfig], limited_recheck: float, *, busy: bool, settling: bool
    ) -> float | None:
        """After a claim that left slots free: seconds to wait before claiming again, or None when
        the run is over. ``busy``: some of its own tasks still run; ``settling``: some of their
        outcomes are not written yet (the run is over only when neither)."""
        now = time.monotonic()
        if busy and now < self._next_sweep:
            return self.capped(self._next_sweep - now)
        try:
            sweep = await self.sweep(queues)
        except TRANSIENT_REDIS_ERRORS as exc:
            delay = self._backoff.next_delay()
            log.warning("burst sweep failed (%s); retrying in %.2fs", exc, delay)
            return self.capped(delay)
        self._backoff.succeeded()
        self._next_sweep = time.monotonic() + BUSY_SWEEP_SECONDS
        wait = next_wait(sweep, limited_recheck)
        if busy or settling:
            fallback = BUSY_SWEEP_SECONDS if busy else SETTLING_RECHECK_SECONDS
            return self.capped(fallback if wait is None else min(wait, fallback))
        return None if wait is None else self.capped(wait)

    async def sweep(self, queues: Sequence[QueueConfig]) -> Sweep:
        """Promote due tasks and recover expired leases (what a scheduler does), then look at what
        the queues hold. A few round trips: burst workers sweep only when idle."""
        promoted = 0
        next_due: list[int] = []
        now_ms = 0
        for queue in queues:
            while True:
                promotion = await self.store.promote_due(queue.name, PROMOTE_BATCH)
                promoted += promotion.promoted
                now_ms = promotion.now_ms
                if promotion.promoted:
                    telemetry.TASKS_PROMOTED.add((queue.name,), promotion.promoted)
                    telemetry.SCHEDULER_LAG.record(promotion.max_lag_ms, (queue.name,))
                if promotion.promoted < PROMOTE_BATCH:
                    break
            if promotion.next_due_ms is not None:
                next_due.append(promotion.next_due_ms)
        recovered = await self.store.recover_expired_leases()
        await record_recovered(self.store, recovered)
        taken_back = len(recovered.requeued) + len(recovered.stalled) + len(recovered.cancelled)
        if taken_back:
            log.warning(
                "burst sweep recovered expired leases: re-queued %s, stalled %s, cancelled %s",
                recovered.requeued,
                recovered.stalled,
                recovered.cancelled,
            )
        # A paused queue's tasks are not there to run: a burst run does not wait for them.
        stats = await self.store.queue_stats([q.name for q in queues])
        ready = sum(s.depth for s in stats if not s.paused)
        return Sweep(
            promoted=promoted,
            recovered=len(recovered.requeued),
            ready=ready,
            next_due_in_ms=(min(next_due) - now_ms) if next_due else None,
        )
