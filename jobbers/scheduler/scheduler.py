"""The scheduler loop: promotes due tasks of its role's queues, recovers expired leases and
relays the effects of workflow runs across queues (their outboxes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from jobbers import telemetry
from jobbers.config_store import ConfigStore
from jobbers.process import settle, stop_on_signals
from jobbers.recovery import DEATH_HORIZON_SECONDS, record_recovered
from jobbers.scheduler.decisions import seconds_until_next_pass
from jobbers.scheduler.recurring import RecurringFirer
from jobbers.settings import Settings
from jobbers.state.reconnect import TRANSIENT_REDIS_ERRORS, Backoff, is_out_of_memory
from jobbers.state.store import RecoverResult, TaskStore
from jobbers.state.workflows import relay_workflow_outbox
from jobbers.worker import fault_hooks

log = logging.getLogger(__name__)

#: Seconds between the sweeps for dead workers' leases and hung tasks (each reads every running task).
SWEEP_INTERVAL = 1.0


class Scheduler:
    """Long-running; any number may run at once (each promotion is one atomic script).

    It sleeps until the earliest due task or ``SCHEDULER_POLL_INTERVAL``, whichever is sooner,
    and wakes early when something new is scheduled. Each pass also re-queues tasks whose worker
    lease expired, so a crashed worker's tasks come back without waiting for the cron cleaner.
    At most once a second a pass also takes back the tasks of workers that stopped renewing their
    leases for two renewal intervals (before their leases expire), and marks ``stalled`` the tasks
    whose type's ``max_heartbeat_interval`` passed without a heartbeat while their worker lives.
    With ``queue_stats_interval`` set it also reports its queues' depth and oldest-task age.
    """

    def __init__(
        self,
        settings: Settings,
        store: TaskStore,
        config: ConfigStore,
        queue_stats_interval: float | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.config = config
        self.queue_stats_interval = queue_stats_interval
        self.stopping = False
        self._wake = asyncio.Event()
        self._queues_cache: tuple[float, list[str]] | None = None
        self.recurring = RecurringFirer(store, config)
        self._last_sweep = 0.0
        self._out_of_memory = False

    def request_shutdown(self) -> None:
        """Stop after the current pass."""
        self.stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Run passes until SIGTERM/SIGINT (or ``request_shutdown()``), backing off while Redis is down."""
        stop_on_signals(self.request_shutdown)
        listener = self.store.listener(on_schedule=self._wake.set, on_reconnect=self._wake.set)
        background = [asyncio.create_task(listener.run(), name="signals")]
        if self.queue_stats_interval:
            background.append(
                asyncio.create_task(self._report_queue_stats(self.queue_stats_interval), name="queue-stats")
            )
        backoff = Backoff()
        try:
            while not self.stopping:
                self._wake.clear()
                try:
                    sleep = await self.run_once()
                    backoff.succeeded()
                except TRANSIENT_REDIS_ERRORS as exc:
                    sleep = backoff.next_delay()
                    log.warning("scheduler pass failed (%s); retrying in %.2fs", exc, sleep)
                if sleep > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), sleep)
        finally:
            listener.stop()
            await settle(background)

    async def run_once(self) -> float:
        """One pass over the role's queues; returns how long to sleep before the next."""
        promotions = []
        for queue in await self._queue_names():
            promotion = await self.store.promote_due(queue, self.settings.scheduler_batch_size)
            promotions.append(promotion)
            if promotion.promoted:
                telemetry.TASKS_PROMOTED.add((queue,), promotion.promoted)
                telemetry.SCHEDULER_LAG.record(promotion.max_lag_ms, (queue,))
        # Effects of workflow runs across queues (each queue's space its own, maybe on another shard).
        kill = fault_hooks.relay_delivered if fault_hooks.KILL_RELAY_AT else None
        await relay_workflow_outbox(self.store, await self.store.known_queues(), before_delete=kill)
        recovered, hung = await self._take_back()
        for label, ids in (
            ("re-queued", recovered.requeued),
            ("stalled", recovered.stalled),
            ("cancelled", recovered.cancelled),
        ):
            if ids:
                log.warning("expired leases: %s %d tasks: %s", label, len(ids), ids)
        await record_recovered(self.store, recovered, hung)
        until_recurring = await self.recurring.fire_due()
        return min(
            until_recurring,
            seconds_until_next_pass(
                self.settings.scheduler_poll_interval, self.settings.scheduler_batch_size, promotions
            ),
        )

    async def _take_back(self) -> tuple[RecoverResult, list[str]]:
        """Recover expired leases (and, at most once a second, dead workers' leases and hung tasks).

        While Redis is out of memory it refuses these scripts whole (``OOM_RULES``): workers'
        renewals still go through then, and a task re-queued could not be claimed anyway, so
        nothing is taken back until Redis has memory again. Logged once per episode.
        """
        sweep = time.monotonic() - self._last_sweep >= SWEEP_INTERVAL
        horizon = DEATH_HORIZON_SECONDS if sweep else 0.0
        try:
            recovered = await self.store.recover_expired_leases(horizon_seconds=horizon)
            hung: list[str] = []
            if sweep:
                self._last_sweep = time.monotonic()
                hung = await self.store.stall_silent_tasks(None)
        except TRANSIENT_REDIS_ERRORS as exc:
            if not is_out_of_memory(exc):
                raise
            if not self._out_of_memory:
                log.warning("Redis is out of memory (%s): lease recovery waits until it is not", exc)
            self._out_of_memory = True
            return RecoverResult([], [], []), []
        if self._out_of_memory:
            log.warning("Redis has memory again: lease recovery goes on")
            self._out_of_memory = False
        if hung:
            log.warning("stalled %d tasks silent past their max_heartbeat_interval: %s", len(hung), hung)
        return recovered, hung

    async def _report_queue_stats(self, interval: float) -> None:
        """Refresh the queue depth and oldest-age gauges every ``interval`` seconds."""
        while True:
            try:
                stats = await self.store.queue_stats(await self._queue_names())
            except TRANSIENT_REDIS_ERRORS as exc:
                log.debug("could not read queue stats: %s", exc)
            else:
                telemetry.QUEUE_DEPTH.replace({(s.queue,): s.depth for s in stats})
                telemetry.QUEUE_OLDEST_TASK_AGE.replace({(s.queue,): s.oldest_age_ms for s in stats})
            await asyncio.sleep(interval)

    async def _queue_names(self) -> list[str]:
        # Re-read from SQL at most once per poll interval: a busy scheduler loops without sleeping,
        # and role changes need only reach it within one interval.
        now = time.monotonic()
        cached = self._queues_cache
        if cached is not None and now - cached[0] < self.settings.scheduler_poll_interval:
            return cached[1]
        try:
            names = [q.name for q in await self.config.queues_for_role(self.settings.scheduler_role)]
        except Exception as exc:
            log.warning("could not read queue configuration (%s); using queues seen in Redis", exc)
            return await self.store.known_queues()
        self._queues_cache = (now, names)
        try:
            # Each pass that reads them records them in Redis's queue set again: a failover can
            # lose that write, and lease recovery and the cleaner find a queue's tasks through it.
            await self.store.record_queues(names)
        except TRANSIENT_REDIS_ERRORS as exc:
            log.debug("could not record the queues in Redis (%s); the next pass tries again", exc)
        return names
