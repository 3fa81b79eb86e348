"""Lease renewal on a thread of its own, so a task that blocks the event loop costs no other task
its lease.

Task code runs on the worker's event loop, and a task that blocks it synchronously (a CPU-bound
loop, a blocking call) stops everything on it. So leases are renewed by ``LeaseKeeper``: a thread
with its own event loop and its own Redis connection. It only reads the worker's runs; what it
learns (leases lost, cancellations requested) it hands to the worker's loop with
``call_soon_threadsafe``. It also watches that loop: a loop that has not answered a probe for
``BLOCKED_LOOP_SECONDS`` is blocked, and a warning names the task that was running on it, and
again, once it lets go, for how long it held the loop.

Renewing a lease proves the worker alive, not the task: a heartbeat is written only when the task
itself called ``heartbeat()`` (or reported progress with ``task.progress()``, written the same
way). So ``max_heartbeat_interval`` still ends a task that is truly hung (the scheduler marks it
``stalled``), and its lease, lost from then on, is no longer renewed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable

from jobbers.context import progress_text
from jobbers.settings import Settings
from jobbers.state.codec import pack_progress
from jobbers.state.connection import connect
from jobbers.state.reconnect import TRANSIENT_REDIS_ERRORS, within
from jobbers.state.store import LeaseRenewal, TaskStore
from jobbers.worker.running import Running

log = logging.getLogger(__name__)

#: A task's ``heartbeat()`` reaches Redis within this long: the keeper writes every new heartbeat
#: (and renews every lease) in one round trip, ahead of the next lease renewal.
HEARTBEAT_WRITE_SECONDS = 1.0
#: How often the keeper probes the worker's event loop.
PROBE_SECONDS = 0.25
#: A loop that has not answered a probe for this long is blocked, and the task blocking it named.
BLOCKED_LOOP_SECONDS = 1.0
#: At shutdown, how long the worker waits for the keeper's thread to end.
STOP_SECONDS = 5.0

#: A ``task.progress()`` report: (current, total, message).
Progress = tuple[float, float | None, str | None]


def _progress(run: Running, written: Progress | None) -> tuple[bytes, str]:
    """What a renewal writes of ``run``'s progress: its new report, packed, and its text."""
    report = run.handle.last_progress
    if report is None or report == written:
        return b"", ""
    return pack_progress(*report, run.claim.retry_attempt), progress_text(*report)


#: What the keeper reads from the worker: (running runs, runs whose outcome is not written yet).
HeldRuns = Callable[[], tuple[list[Running], list[Running]]]
#: Called on the worker's loop with each renewal's answer: (lost leases, ids to cancel).
RenewalAnswer = Callable[[list[LeaseRenewal], list[str]], None]


class LeaseKeeper:
    """Renews one worker's leases every third of ``lease_seconds`` from its own thread."""

    def __init__(
        self, settings: Settings, lease_seconds: float, held: HeldRuns, answer: RenewalAnswer
    ) -> None:
        self._settings = settings
        self._lease_seconds = lease_seconds
        self._held = held
        self._answer = answer
        self._stop = threading.Event()
        #: The keeper's own loop and the event that wakes it from its wait at ``stop``.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._worker_loop: asyncio.AbstractEventLoop | None = None
        #: token -> the heartbeat (monotonic) last written for that run
        self._written: dict[str, float | None] = {}
        #: token -> the progress report last written for that run
        self._progress_written: dict[str, Progress | None] = {}
        #: The loop watch (shared by this thread and the worker's loop): when the unanswered probe
        #: was sent, and the task blocking the loop once it is named.
        self._watch = threading.Lock()
        self._probe_sent: float | None = None
        self._blocker: str | None = None

    def start(self) -> None:
        """Start renewing (call from the worker's event loop)."""
        self._worker_loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._main, name="lease-renewal", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop renewing; waits for the thread (at most ``STOP_SECONDS``), woken from its wait at
        once (a worker recycled by WORKER_TTL does not sit out a probe interval at each exit)."""
        self._stop.set()
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None:
            # Not yet set: the thread sees _stop before it first waits. Closed: it has ended.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wakeup.set)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, STOP_SECONDS)

    def _main(self) -> None:
        asyncio.run(self._renew_until_stopped())

    async def _renew_until_stopped(self) -> None:
        settings = self._settings
        redis = connect(settings.redis_url, settings.redis_cluster)
        store = TaskStore(redis, settings.redis_key_prefix, settings.audit_max_events)
        interval = self._lease_seconds / 3
        heartbeat_every = min(interval, HEARTBEAT_WRITE_SECONDS)
        last = time.monotonic()
        self._wakeup = wakeup = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    wait = max(min(PROBE_SECONDS, last + interval - time.monotonic()), 0.001)
                    await asyncio.wait_for(wakeup.wait(), wait)
                if self._stop.is_set():
                    break
                self._probe()
                running, unwritten = self._held()
                since = time.monotonic() - last
                beat = since >= heartbeat_every and any(
                    r.handle.last_heartbeat != self._written.get(r.claim.token)
                    or r.handle.last_progress != self._progress_written.get(r.claim.token)
                    for r in running
                )
                if since < interval and not beat:
                    continue
                last = time.monotonic()
                await self._renew(store, running, unwritten, interval)
        finally:
            with contextlib.suppress(Exception):
                await store.close()

    async def _renew(
        self, store: TaskStore, running: list[Running], unwritten: list[Running], interval: float
    ) -> None:
        beats = {r.claim.token: r.handle.last_heartbeat for r in running}
        reports = {r.claim.token: r.handle.last_progress for r in running}
        leases = [
            LeaseRenewal(r.claim.id, r.claim.token, beats[r.claim.token] != self._written.get(r.claim.token),
                         r.claim.queue, *_progress(r, self._progress_written.get(r.claim.token)))
            for r in running
        ]
        leases += [LeaseRenewal(r.claim.id, r.claim.token, queue=r.claim.queue) for r in unwritten]
        if not leases:
            return
        try:
            renewal = store.renew_leases(self._lease_seconds, leases)
            lost, cancel = await within(renewal, interval, "lease renewal")
        except TRANSIENT_REDIS_ERRORS as exc:
            log.warning("lease renewal failed: %s", exc)
            return
        self._written = beats
        self._progress_written = reports
        if lost or cancel:
            self._to_worker(self._answer, lost, cancel)

    def _to_worker(self, callback: Callable[..., None], *args: object) -> None:
        assert self._worker_loop is not None
        with contextlib.suppress(RuntimeError):  # the worker's loop closed: it has stopped
            self._worker_loop.call_soon_threadsafe(callback, *args)

    # -- watching the worker's loop ---------------------------------------------------------

    def _probe(self) -> None:
        now = time.monotonic()
        with self._watch:
            sent = self._probe_sent
            if sent is None:
                self._probe_sent = now
                self._to_worker(self._probe_answered, now)
                return
            if self._blocker is not None or now - sent < BLOCKED_LOOP_SECONDS:
                return
            self._blocker = blocker = self._blocking_task()
        log.warning("the event loop is blocked by %s (%.1f s so far); its leases are still renewed",
                    blocker, now - sent)

    def _probe_answered(self, sent: float) -> None:
        """Runs on the worker's loop: it is free again (a probe is answered at its next turn)."""
        held = time.monotonic() - sent
        with self._watch:
            blocker, self._blocker, self._probe_sent = self._blocker, None, None
        if blocker is not None:
            log.warning("%s blocked the event loop for %.1f s: a task must await, or run blocking code "
                        "in a thread (asyncio.to_thread)", blocker, held)

    def _blocking_task(self) -> str:
        """Describe the task running on the worker's loop (read from this thread)."""
        assert self._worker_loop is not None
        current = asyncio.current_task(self._worker_loop)
        if current is None:
            return "code outside any task"
        running, _ = self._held()
        for run in running:
            if run.atask is current:
                claim = run.claim
                return f"task {claim.id} ({claim.name} v{claim.version})"
        coro = current.get_coro()
        return f"asyncio task {current.get_name()} ({getattr(coro, '__qualname__', coro)})"
