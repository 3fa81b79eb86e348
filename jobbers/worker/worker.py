"""Claim loop, task execution, lease renewal, outcome batching and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

from jobbers import telemetry
from jobbers.config_store import ConfigStore
from jobbers.context import RunningTask, set_current_task
from jobbers.logs import bind_task
from jobbers.models.outcomes import RetryKind
from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import TaskStatus
from jobbers.models.task_config import DeadLetterPolicy, ShutdownPolicy
from jobbers.process import settle, stop_on_signals
from jobbers.registry import find_task_config, registered_tasks, runnable_tasks
from jobbers.settings import Settings
from jobbers.state.codec import pack
from jobbers.state.reconnect import TRANSIENT_REDIS_ERRORS, Backoff, until_reachable, within
from jobbers.state.store import ClaimedTask, LeaseRenewal, Outcome, TaskStore
from jobbers.worker import fault_hooks
from jobbers.worker.burst import BurstRun
from jobbers.worker.decisions import decide_after_error, describe_exception, shutdown_action
from jobbers.worker.fan_out import complete_with_fan_out
from jobbers.worker.lease_keeper import LeaseKeeper
from jobbers.worker.running import Running, StopReason, make_worker_id, stall_config

log = logging.getLogger(__name__)

#: How long an idle worker waits on its wake-up signal before re-checking anyway (a safety net
#: for a lost pub/sub message; new work normally wakes it within milliseconds).
IDLE_RECHECK_SECONDS = 5.0
#: Re-check interval when a queue holds work back because of its ``max_concurrent`` limit.
LIMITED_RECHECK_SECONDS = 0.25
#: A worker counts as alive (admin overview) this many refresh intervals after its last report,
#: and never less than ``MIN_ALIVE_SECONDS`` (tests refresh every few hundred milliseconds).
ALIVE_REFRESH_INTERVALS = 3
MIN_ALIVE_SECONDS = 2.0
#: After its running count changes, a worker reports itself within this many seconds (at most
#: once per this interval), so the overview does not show a stale count for a refresh interval.
RUNNING_REPORT_SECONDS = 0.25
#: While its role does not exist (or lists no existing queue), a worker repeats its warning at
#: most this often.
IDLE_ROLE_WARNING_SECONDS = 30.0
#: On SIGTERM/SIGINT a claim under way gets this long to return before it is cut short.
CLAIM_STOP_GRACE_SECONDS = 0.5
#: At shutdown, outcomes are written (retried while Redis fails) for at most this long.
SHUTDOWN_WRITE_SECONDS = 3.0
#: At shutdown, removing the worker's liveness record waits at most this long.
FORGET_SECONDS = 1.0


class Worker:
    """Consumes every queue of its role: in the role's order when it has one (a later queue gets
    claims only while those before it have no work to start), else rotating among them.

    Every claimed task is held under a lease in Redis (never only in this process's memory), the
    lease is renewed by this runtime whatever the task's code does, and every outcome is written
    fenced by the lease token, so a task this worker lost to lease recovery cannot be written
    twice. See docs/reliability.md.
    """

    def __init__(
        self, settings: Settings, store: TaskStore, config: ConfigStore, worker_id: str | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.config = config
        self.worker_id = worker_id or make_worker_id()
        self.slots = settings.worker_concurrent_tasks
        self.lease_seconds = settings.worker_lease_seconds
        self.queues: list[QueueConfig] = []
        #: Whether the role orders its queues (drained first queue first) rather than rotated.
        self.in_order = False
        #: Every run this worker holds, by lease token: a task recovered from this worker and
        #: claimed by it again is held under a new lease while its earlier run is being stopped.
        self.running: dict[str, Running] = {}
        #: The latest run of each task id (the one a cancel or a new claim of the id concerns).
        self._run_of: dict[str, Running] = {}
        self.pending: list[tuple[Outcome, Running]] = []
        self.unacked: dict[str, Running] = {}  # token -> run whose outcome is not written yet
        self.processed = 0
        self.stopping = False
        self._stop_requested = asyncio.Event()
        self._wake = asyncio.Event()
        #: Whether ready work may wait that no claim has been asked for since: a claim that filled
        #: its batch, a wake-up, a reconnect or a queue change sets it; asking for a claim clears it.
        #: Without it a task's end starts no claim (the queues were drained; new work wakes us).
        self._more_work = True
        self._outcome_ready = asyncio.Event()
        self._rotation = 0
        self._closed = False
        self._published = False  # whether the task types are published for self.queues
        self._running_changed = asyncio.Event()
        self._idle_role_warned_at: float | None = None
        #: Burst mode: exit once the role's queues are drained (``jobbers.worker.burst``).
        self.burst = BurstRun(settings, store) if settings.worker_burst else None
        # WORKER_TTL's default assumes a supervisor restarting the worker; a burst run ends anyway.
        counts_ttl = self.burst is None or "worker_ttl" in settings.model_fields_set
        self.ttl = settings.worker_ttl if counts_ttl else 0

    # -- lifecycle --------------------------------------------------------------------------

    async def run(self, handle_signals: bool = True) -> None:
        """Run until SIGTERM/SIGINT (or ``request_shutdown()``) or until ``WORKER_TTL`` tasks."""
        if handle_signals:
            stop_on_signals(self.request_shutdown)
        listener = self.store.listener(
            on_wake=self._on_wake, on_cancel=self._on_cancel, on_reconnect=self._recheck
        )
        if not await self._unless_stopped(self._start_up(), grace=0):
            log.info("worker %s stopped before Redis was reachable", self.worker_id)
            return
        keeper = LeaseKeeper(self.settings, self.lease_seconds, self._held_runs, self._on_renewed)
        keeper.start()
        background = [
            asyncio.create_task(listener.run(), name="signals"),
            asyncio.create_task(self._refresh_loop(), name="refresh"),
            asyncio.create_task(self._report_running_changes(), name="report-running"),
        ]
        flusher = asyncio.create_task(self._flush_loop(), name="flush")
        log.info(
            "worker %s started, role=%s queues=%s tasks=%s",
            self.worker_id,
            self.settings.worker_role,
            [q.name for q in self.queues],
            [f"{c.name} v{c.version}" for c in runnable_tasks()],
        )
        try:
            await self._unless_stopped(self._claim_loop(), grace=CLAIM_STOP_GRACE_SECONDS)
            await self._drain()
        finally:
            # Outcomes are retried this long: past it, an unreachable Redis holds up no exit (the
            # leases of what is left expire and recovery re-queues it, as after a crash).
            deadline = time.monotonic() + SHUTDOWN_WRITE_SECONDS
            self._closed = True
            self._outcome_ready.set()
            self._running_changed.set()
            # The flusher may be writing a batch right now: let it finish (it exits once closed)
            # rather than cancel it mid-write, then write whatever is left.
            await asyncio.wait([flusher], timeout=max(deadline - time.monotonic(), 0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_remaining(deadline), max(deadline - time.monotonic(), 0.1))
            if self.pending:
                log.error("gave up writing %d outcomes at shutdown: Redis is unreachable", len(self.pending))
            listener.stop()
            await settle([flusher, *background])
            await keeper.stop()
            with contextlib.suppress(TimeoutError, *TRANSIENT_REDIS_ERRORS):
                await asyncio.wait_for(self.store.forget_worker(self.worker_id), FORGET_SECONDS)
        log.info("worker %s stopped after %d tasks", self.worker_id, self.processed)

    async def _start_up(self) -> None:
        await self.refresh_config(wait_for_redis=True)
        await self._report_alive()

    async def _unless_stopped(self, work: Coroutine[Any, Any, None], grace: float) -> bool:
        """Run ``work``; once shutdown is requested, give it ``grace`` seconds, then cancel it.

        Whatever Redis does (refused, black-holed, out of memory), a signal ends the wait: a claim
        cut short this way leaves its tasks in Redis with leases that expire. True if ``work`` ended.
        """
        job = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait([job, stop], return_when=asyncio.FIRST_COMPLETED)
            if not job.done() and grace > 0:
                await asyncio.wait([job], timeout=grace)
            if not job.done():
                job.cancel()
                await asyncio.wait([job], timeout=1.0)  # redis-py may swallow a cancel: never wait on
                return False
            job.result()
            return True
        finally:
            stop.cancel()

    def request_shutdown(self) -> None:
        """Stop claiming; apply each running task's ``on_shutdown`` policy."""
        if self.stopping:
            return
        log.info("worker %s shutting down, %d tasks running", self.worker_id, len(self.running))
        self.stopping = True
        self._stop_requested.set()
        self._wake.set()
        for entry in list(self.running.values()):
            self._apply_shutdown_policy(entry)

    @staticmethod
    def _apply_shutdown_policy(entry: Running) -> None:
        policy = shutdown_action(entry.config)
        if policy is ShutdownPolicy.STOP:
            entry.interrupt(StopReason.SHUTDOWN_STOP)
        elif policy is ShutdownPolicy.RESUBMIT:
            entry.interrupt(StopReason.SHUTDOWN_RESUBMIT)
        # CONTINUE: leave it running; _drain waits up to the grace period.

    async def _drain(self) -> None:
        tasks = [e.atask for e in self.running.values() if e.atask is not None]
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=self.settings.worker_shutdown_grace)
        if pending:
            log.warning("%d tasks still running after the grace period; re-queueing them", len(pending))
            for entry in list(self.running.values()):
                entry.interrupt(StopReason.SHUTDOWN_RESUBMIT)
            await asyncio.wait(pending, timeout=5.0)

    # -- configuration ----------------------------------------------------------------------

    async def _publish_task_types(self, queues: list[QueueConfig]) -> None:
        """Publish the stall config of every registered task where the tasks of ``queues`` live."""
        types = [(c.name, c.version, stall_config(c)) for c in registered_tasks()]
        await self.store.publish_task_types(types, [q.name for q in queues])

    async def refresh_config(self, wait_for_redis: bool = False) -> None:
        """Re-read the role's queues from SQL; a change takes effect on the next claim.

        The task types' stall config is published for new queues before they are claimed from,
        so lease recovery of a task always finds its worker's config. While Redis is unreachable
        the old queues are kept (or, with ``wait_for_redis``, at start, this waits for Redis).
        """
        try:
            queues, in_order = await self.config.role_queues(self.settings.worker_role)
            idle_reason = None if queues else await self._why_role_has_no_queues()
        except Exception as exc:
            log.warning("could not read queue configuration: %s", exc)
            return
        self._warn_while_idle(idle_reason)
        if queues != self.queues or not self._published:
            if wait_for_redis:
                await until_reachable(lambda: self._publish_task_types(queues), log, "publishing task types")
            else:
                try:
                    await within(self._publish_task_types(queues))
                except TRANSIENT_REDIS_ERRORS as exc:
                    log.warning("could not publish task types (%s); keeping the queues as they were", exc)
                    return
            self._published = True
        if queues != self.queues or in_order != self.in_order:
            how = "in that order" if in_order else "in rotation"
            log.info("worker %s now consumes %s %s", self.worker_id, [q.name for q in queues], how)
            self.queues = queues
            self.in_order = in_order
            self._recheck()

    async def _why_role_has_no_queues(self) -> str:
        role_name = self.settings.worker_role
        role = await self.config.get_role(role_name)
        if role is None:
            return f"role {role_name!r} does not exist"
        if not role.queues:
            return f"role {role_name!r} lists no queues"
        return f"role {role_name!r} lists only queues that do not exist ({', '.join(role.queues)})"

    def _warn_while_idle(self, reason: str | None) -> None:
        """Warn loudly (again every ``IDLE_ROLE_WARNING_SECONDS``) while the role gives no queue."""
        if reason is None:
            if self._idle_role_warned_at is not None:
                log.info("worker %s: role %r now has queues", self.worker_id, self.settings.worker_role)
                self._idle_role_warned_at = None
            return
        now = time.monotonic()
        if self._idle_role_warned_at is None or now - self._idle_role_warned_at >= IDLE_ROLE_WARNING_SECONDS:
            self._idle_role_warned_at = now
            log.warning(
                "worker %s consumes no queue: %s; create or fix it (PUT /roles/%s) or set WORKER_ROLE "
                "to another role. Until then this worker runs nothing.",
                self.worker_id,
                reason,
                self.settings.worker_role,
            )

    async def _report_running_changes(self) -> None:
        """Report soon after the running count changes, at most every ``RUNNING_REPORT_SECONDS``."""
        # Not `while True`: a cancel that lands inside a Redis call can be swallowed by redis-py.
        while not self._closed:
            await self._running_changed.wait()
            self._running_changed.clear()
            if self._closed:
                return
            await self._report_alive()
            await asyncio.sleep(RUNNING_REPORT_SECONDS)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.worker_refresh_interval)
            await self.refresh_config()
            await self._report_alive()

    async def _report_alive(self) -> None:
        """Tell the admin overview this worker is alive and what it runs (best effort)."""
        ttl = max(ALIVE_REFRESH_INTERVALS * self.settings.worker_refresh_interval, MIN_ALIVE_SECONDS)
        info: dict[str, str | int] = {
            "role": self.settings.worker_role,
            "queues": ",".join(q.name for q in self.queues),
            "running": len(self.running),
            "slots": self.slots,
            "processed": self.processed,
        }
        try:
            await within(self.store.report_worker(self.worker_id, ttl, info))
        except TRANSIENT_REDIS_ERRORS as exc:
            log.debug("could not report worker %s alive: %s", self.worker_id, exc)

    # -- claiming ---------------------------------------------------------------------------

    def _capacity(self) -> int:
        free = self.slots - len(self.running)
        ttl = self.ttl
        if ttl:
            free = min(free, ttl - self.processed - len(self.running))
        return free

    def _ttl_reached(self) -> bool:
        ttl = self.ttl
        return bool(ttl) and self.processed >= ttl

    async def _claim_loop(self) -> None:
        backoff = Backoff()
        while not self.stopping:
            if self._ttl_reached():
                log.info("worker %s reached WORKER_TTL=%d", self.worker_id, self.ttl)
                self.stopping = True
                break
            if self.burst is not None and self._burst_cut_short():
                self.stopping = True
                break
            free = self._capacity()
            if free <= 0 or not self.queues:
                # No slot: a wake-up now would only spin this loop. The work it announced is
                # remembered (_more_work), and the next task's end wakes the loop to claim it.
                self._wake.clear()
                await self._wait_for_wake(
                    self.burst.capped(IDLE_RECHECK_SECONDS) if self.burst else IDLE_RECHECK_SECONDS
                )
                continue
            self._wake.clear()
            self._more_work = False
            order = self.queues if self.in_order else self._rotated_queues()
            try:
                result = await within(
                    self.store.claim(self.worker_id, self.lease_seconds, free, order, in_order=self.in_order)
                )
            except TRANSIENT_REDIS_ERRORS as exc:
                await backoff.wait(log, "claim", exc)
                continue
            backoff.succeeded()
            if result.tasks and fault_hooks.EXIT_AFTER_CLAIM:
                fault_hooks.exit_inside_claim_window()
            if result.tasks and fault_hooks.KILL_AT_STEP:
                fault_hooks.step_taken()
            for claimed in result.tasks:
                self._start(claimed, result.now_ms)
            if len(result.tasks) >= free:
                self._more_work = True  # a full batch: more may wait
                continue
            if self.burst is not None:
                wait = await self._burst_wait()
                if wait is None:
                    self.stopping = True
                    break
                await self._wait_for_wake(wait)
                continue
            if result.retry_in_ms is not None:
                timeout = max(result.retry_in_ms / 1000, 0.001)
            elif any(q.max_concurrent for q in self.queues):
                timeout = LIMITED_RECHECK_SECONDS
            else:
                timeout = IDLE_RECHECK_SECONDS
            await self._wait_for_wake(timeout)

    def _burst_cut_short(self) -> bool:
        """Whether a burst run must stop before its queues are drained (``--max-seconds``, or no queue)."""
        assert self.burst is not None
        if self.queues and not self.burst.out_of_time():
            return False
        reason = "its role gives it no queue" if not self.queues else "--max-seconds reached"
        log.info("burst worker %s stops claiming: %s", self.worker_id, reason)
        return True

    async def _burst_wait(self) -> float | None:
        """After a claim that left slots free: how long a burst worker waits, or None once done."""
        assert self.burst is not None
        settling = bool(self.pending or self.unacked)
        wait = await self.burst.when_idle(
            self.queues, LIMITED_RECHECK_SECONDS, busy=bool(self.running), settling=settling
        )
        if wait is None:
            log.info("burst worker %s: queues drained after %d tasks", self.worker_id, self.processed)
        return wait

    def _rotated_queues(self) -> list[QueueConfig]:
        # Rotate the starting queue each claim so one busy queue cannot starve the others.
        n = len(self.queues)
        self._rotation = (self._rotation + 1) % n
        return self.queues[self._rotation :] + self.queues[: self._rotation]

    async def _wait_for_wake(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _on_wake(self, queue: str) -> None:
        if any(q.name == queue for q in self.queues):
            self._recheck()

    def _recheck(self) -> None:
        """Claim again: work may be ready that no claim has been asked for yet."""
        self._more_work = True
        self._wake.set()

    def _slot_freed(self) -> None:
        """A task ended: claim again if work may wait (or to count WORKER_TTL, or end a burst)."""
        if self._more_work or self.ttl or self.burst is not None or self.stopping:
            self._wake.set()

    def _on_cancel(self, task_id: str) -> None:
        entry = self._run_of.get(task_id)
        if entry is not None:
            entry.interrupt(StopReason.USER_CANCEL)

    # -- running ----------------------------------------------------------------------------

    def _start(self, claimed: ClaimedTask, now_ms: int) -> None:
        role = self.settings.worker_role
        labels = (claimed.queue, role, claimed.name)
        telemetry.TASKS_SELECTED.add(labels)
        telemetry.TIME_IN_QUEUE.record(max(now_ms - claimed.queued_at_ms, 0), labels)
        telemetry.TASKS_IN_FLIGHT.add((claimed.queue, role))
        handle = RunningTask(
            id=claimed.id,
            name=claimed.name,
            version=claimed.version,
            queue=claimed.queue,
            params=claimed.params,
            retry_attempt=claimed.retry_attempt,
        )
        entry = Running(
            claim=claimed,
            config=find_task_config(claimed.name, claimed.version),
            handle=handle,
            claimed_at_ms=now_ms,
        )
        earlier = self._run_of.get(claimed.id)
        self.running[claimed.token] = entry
        self._run_of[claimed.id] = entry
        self._running_changed.set()
        if earlier is not None:
            # Claimed again while an earlier run goes on: the task was recovered (its lease lost,
            # say to a partition), so that run is stopped, and this one starts once it has ended.
            log.warning(
                "task %s claimed again while its earlier run (lease %s) goes on: that lease is lost; "
                "stopping that run before this one starts",
                claimed.id,
                earlier.claim.token,
            )
            earlier.interrupt(StopReason.LEASE_LOST)
        entry.atask = asyncio.create_task(self._execute(entry, earlier), name=f"task:{claimed.id}")
        if self.stopping:
            # A claim that was in flight when shutdown began: its tasks get the policy too.
            self._apply_shutdown_policy(entry)

    async def _execute(self, entry: Running, earlier: Running | None = None) -> None:
        entry.began = True
        claim = entry.claim
        # Runs in the task's own asyncio task: the log fields and the span stay with this task.
        bind_task(
            claim.id, claim.name, claim.queue, claim.retry_attempt, self.worker_id, claim.correlation_id
        )
        span = (
            telemetry.TaskSpan.start(
                claim.trace,
                claim.id,
                claim.name,
                claim.queue,
                claim.retry_attempt,
                self.worker_id,
                claim.correlation_id,
            )
            if claim.trace
            else None
        )
        outcome: Outcome | None
        try:
            outcome = await self._attempt(entry, earlier)
        except BaseException as exc:
            log.exception("internal error running task %s", claim.id)
            outcome = self._outcome(entry, TaskStatus.FAILED, error=exc)
        finally:
            entry.finished = time.monotonic()
            self.running.pop(claim.token, None)
            if self._run_of.get(claim.id) is entry:
                del self._run_of[claim.id]
            self._running_changed.set()
            telemetry.TASKS_IN_FLIGHT.add((claim.queue, self.settings.worker_role), -1)
            self._slot_freed()
        if span is not None:
            if outcome is None:
                span.end("lease_lost")
            else:
                span.end(outcome.status, outcome.error_type, outcome.error_message)
        spawned = entry.handle.fanned_out
        if outcome is not None and spawned is not None and outcome.status is TaskStatus.COMPLETED:
            # Written alone, in the script that adds the new nodes (the batch has no room for them).
            if fault_hooks.KILL_AT_STEP:
                fault_hooks.step_taken()
            outcome = await complete_with_fan_out(self.store, outcome, spawned)
            if fault_hooks.KILL_AT_STEP:
                fault_hooks.step_taken()
        if outcome is not None:
            self.pending.append((outcome, entry))
            self.unacked[claim.token] = entry
            self._outcome_ready.set()
        self.processed += 1

    async def _attempt(self, entry: Running, earlier: Running | None = None) -> Outcome | None:
        claim, config = entry.claim, entry.config
        if config is None:
            log.warning(
                "dropping task %s: no task %r version %d is registered here",
                claim.id,
                claim.name,
                claim.version,
            )
            return self._outcome(
                entry,
                TaskStatus.DROPPED,
                error_pair=(
                    "UnknownTask",
                    f"no task {claim.name!r} version {claim.version} on worker {self.worker_id}",
                ),
            )
        if entry.stop_reason is not None:  # interrupted before it began (see Running.interrupt)
            return self._after_interrupt(entry)
        set_current_task(entry.handle)
        try:
            if earlier is not None and earlier.atask is not None:
                await asyncio.wait([earlier.atask])  # never two runs of one task at once
                entry.started = time.monotonic()
            coro = config.function(**claim.params)
            if config.timeout is not None:
                # Not wait_for: on Python 3.11 it runs the task in a task of its own, unnamed.
                async with asyncio.timeout(config.timeout):
                    value = await coro
            else:
                value = await coro
        except asyncio.CancelledError:
            return self._after_interrupt(entry)
        except Exception as exc:
            decision = decide_after_error(config, claim.retry_attempt, exc)
            if decision.retry:
                return self._outcome(
                    entry,
                    RetryKind.RETRY,
                    error=exc,
                    retry_attempt=claim.retry_attempt + 1,
                    delay=decision.delay,
                )
            return self._outcome(entry, TaskStatus.FAILED, error=exc, dead_letter=decision.dead_letter)
        try:
            result = pack(value)
        except (TypeError, ValueError, OverflowError) as exc:
            return self._outcome(
                entry,
                TaskStatus.FAILED,
                error_pair=("ResultNotSerializable", f"result could not be stored as msgpack: {exc}"),
            )
        return self._outcome(entry, TaskStatus.COMPLETED, result=result)

    def _after_interrupt(self, entry: Running) -> Outcome | None:
        reason = entry.stop_reason
        config = entry.config
        if reason is StopReason.USER_CANCEL:
            return self._outcome(entry, TaskStatus.CANCELLED)
        if reason is StopReason.SHUTDOWN_RESUBMIT:
            return self._outcome(entry, RetryKind.REQUEUE)
        if reason is StopReason.SHUTDOWN_STOP:
            dead = bool(config and config.dead_letter_policy is DeadLetterPolicy.SAVE)
            return self._outcome(
                entry,
                TaskStatus.STALLED,
                dead_letter=dead,
                error_pair=("WorkerShutdown", "interrupted by worker shutdown (on_shutdown=stop)"),
            )
        # LEASE_LOST (or an unexpected cancel): another process owns this task now; write nothing.
        return None

    def _outcome(
        self,
        entry: Running,
        status: TaskStatus | RetryKind,
        *,
        result: bytes = b"",
        error: BaseException | None = None,
        error_pair: tuple[str, str] | None = None,
        retry_attempt: int | None = None,
        delay: float = 0.0,
        dead_letter: bool = False,
    ) -> Outcome:
        etype, emsg = error_pair or (describe_exception(error) if error is not None else ("", ""))
        return Outcome(
            id=entry.claim.id,
            token=entry.claim.token,
            status=status,
            result=result,
            error_type=etype,
            error_message=emsg,
            retry_attempt=retry_attempt,
            delay_ms=int(delay * 1000),
            dead_letter=dead_letter,
        )

    # -- writing outcomes -------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while not self._closed:
            await self._outcome_ready.wait()
            self._outcome_ready.clear()
            await self._flush_once(deadline=None)

    async def _flush_once(self, deadline: float | None) -> None:
        """Write every pending outcome in one round trip, retrying while Redis is unreachable."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        outcomes = [outcome for outcome, _ in batch]
        backoff = Backoff()
        if fault_hooks.KILL_AT_STEP:
            fault_hooks.step_taken()
        while True:
            try:
                written = await within(self.store.finish(outcomes))
                break
            except TRANSIENT_REDIS_ERRORS as exc:
                if deadline is not None and time.monotonic() > deadline:
                    log.error(
                        "gave up writing %d outcomes (leases will expire and re-queue them): %s",
                        len(outcomes),
                        exc,
                    )
                    return
                await backoff.wait(log, "writing outcomes", exc)
        if fault_hooks.KILL_AT_STEP:
            fault_hooks.step_taken()
        written_at = time.monotonic()
        for (outcome, entry), ok in zip(batch, written, strict=True):
            self.unacked.pop(outcome.token, None)
            if ok:
                self._count_outcome(outcome, entry, written_at)
            else:
                telemetry.LATE_WRITES_REJECTED.add((entry.claim.queue, entry.claim.name))
                log.warning("late write for task %s rejected: its lease was recovered", outcome.id)

    @staticmethod
    def _count_outcome(outcome: Outcome, entry: Running, written_at: float) -> None:
        """Record the metrics of one written outcome; retries count as retries, not as processed."""
        claim = entry.claim
        if outcome.status is RetryKind.RETRY:
            telemetry.TASKS_RETRIED.add((claim.queue, claim.name, str(claim.version)))
            return
        if outcome.status is RetryKind.REQUEUE:  # put back on shutdown: neither processed nor a retry
            return
        labels = (claim.queue, claim.name, outcome.status)
        telemetry.TASKS_PROCESSED.add(labels)
        telemetry.TASK_EXECUTION_TIME.record((entry.finished - entry.started) * 1000, labels)
        # Redis time from submit to claim, then this process's clock: no skew between hosts.
        waited_ms = entry.claimed_at_ms - claim.submitted_at_ms
        telemetry.TASK_END_TO_END_LATENCY.record(waited_ms + (written_at - entry.started) * 1000, labels)
        if outcome.dead_letter:
            telemetry.TASKS_DEAD_LETTERED.add((claim.queue, claim.name, str(claim.version)))

    async def _flush_remaining(self, deadline: float) -> None:
        while self.pending and time.monotonic() < deadline:
            await self._flush_once(deadline)

    # -- leases -----------------------------------------------------------------------------

    def _held_runs(self) -> tuple[list[Running], list[Running]]:
        """What the lease keeper renews: the runs going on, and those whose outcome is unwritten.
        Read from the keeper's thread: each is one copy of a dict's values, which no other thread
        can change half-way."""
        return list(self.running.values()), list(self.unacked.values())

    def _on_renewed(self, lost: list[LeaseRenewal], cancel: list[str]) -> None:
        """A renewal's answer (on this loop): stop each run whose lease is lost; cancel as asked."""
        for lease in lost:
            lost_run = self.running.get(lease.token)
            if lost_run is not None:
                log.warning("lease %s of task %s lost; stopping that run", lease.token, lease.id)
                lost_run.interrupt(StopReason.LEASE_LOST)
        for task_id in cancel:
            self._on_cancel(task_id)
