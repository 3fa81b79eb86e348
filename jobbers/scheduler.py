"""The scheduler: promotes due retry-delayed and scheduled tasks, and recovers expired leases."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from jobbers import telemetry
from jobbers.config_store import ConfigStore
from jobbers.lifecycle import record_recovered, settle
from jobbers.settings import Settings
from jobbers.state.connection import TRANSIENT_REDIS_ERRORS, SignalListener
from jobbers.state.store import TaskStore

log = logging.getLogger(__name__)


class Scheduler:
    """Long-running; any number may run at once (each promotion is one atomic script).

    It sleeps until the earliest due task or ``SCHEDULER_POLL_INTERVAL``, whichever is sooner,
    and wakes early when something new is scheduled. Each pass also re-queues tasks whose worker
    lease expired, so a crashed worker's tasks come back without waiting for the cron cleaner.
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
        self.promoted = 0
        self._queues_cache: tuple[float, list[str]] | None = None

    def request_shutdown(self) -> None:
        self.stopping = True
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_shutdown)
        listener = SignalListener(
            self.store.redis, self.store.keys, on_schedule=self._wake.set, on_reconnect=self._wake.set
        )
        background = [asyncio.create_task(listener.run())]
        if self.queue_stats_interval:
            background.append(asyncio.create_task(self._report_queue_stats(self.queue_stats_interval)))
        backoff = 0.05
        try:
            while not self.stopping:
                self._wake.clear()
                try:
                    sleep = await self.run_once()
                    backoff = 0.05
                except TRANSIENT_REDIS_ERRORS as exc:
                    log.warning("scheduler pass failed (%s); retrying in %.2fs", exc, backoff)
                    sleep = backoff
                    backoff = min(backoff * 2, 2.0)
                if sleep > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), sleep)
        finally:
            listener.stop()
            await settle(background)

    async def run_once(self) -> float:
        """One pass over the role's queues; returns how long to sleep before the next."""
        queues = await self._queue_names()
        poll = self.settings.scheduler_poll_interval
        sleep = poll
        for queue in queues:
            count, next_due, now_ms, lag_ms = await self.store.promote_due(
                queue, self.settings.scheduler_batch_size
            )
            self.promoted += count
            if count:
                telemetry.TASKS_PROMOTED.add((queue,), count)
                telemetry.SCHEDULER_LAG.record(lag_ms, (queue,))
            if count >= self.settings.scheduler_batch_size:
                sleep = 0.0  # a full batch: more may be due right now
            elif next_due is not None:
                sleep = min(sleep, max((next_due - now_ms) / 1000, 0.0))
        recovered = await self.store.recover_expired_leases()
        for label, ids in (
            ("re-queued", recovered.requeued),
            ("stalled", recovered.stalled),
            ("cancelled", recovered.cancelled),
        ):
            if ids:
                log.warning("expired leases: %s %d tasks: %s", label, len(ids), ids)
        await record_recovered(self.store, recovered)
        return sleep

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
        return names
