"""A small Python API for producers that do not use HTTP: submit, inspect, cancel."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

from jobbers import external_tasks, telemetry
from jobbers.config_store import ConfigStore, QueueDirectory
from jobbers.errors import ConfigNotFoundError, ConfigurationError, TaskConflictError, TaskNotFoundError
from jobbers.json_values import check_params
from jobbers.models.outcomes import CancelKind
from jobbers.models.queue_config import DEFAULT_QUEUE
from jobbers.models.recurring import RecurringEntry
from jobbers.models.task import MAX_PRIORITY, MIN_PRIORITY, Task, check_correlation_id, is_priority
from jobbers.models.workflow import WorkflowStatus
from jobbers.recurring_entries import make_entry, set_recurring_paused
from jobbers.registry import find_task_config, validate_params
from jobbers.settings import Settings
from jobbers.state.connection import connect
from jobbers.state.records import new_task_id
from jobbers.state.store import CancelOutcome, NewTask, QueueStats, SubmitOutcome, TaskStore
from jobbers.state.waits import TaskWaits
from jobbers.state.workflows import (
    WorkflowRun,
    cancel_workflow,
    get_workflow,
    submit_workflow,
)
from jobbers.task_builder import build_new_task
from jobbers.workflow_nodes import WorkflowProblems, build_nodes, specs_of
from jobbers.workflows import Workflow


class JobbersClient:
    """Submit and manage tasks through Redis directly (the same state functions the manager uses).

    If the task is registered in this process, its params are checked against its signature and
    its stall/dead-letter options are stored with it; the queue is checked against the SQL config
    (cached for ``queue_cache_seconds``).
    """

    def __init__(self, store: TaskStore, config: ConfigStore | None = None, queue_cache_seconds: float = 5.0):
        self.store = store
        self.config = config
        self.queues = QueueDirectory(config, queue_cache_seconds) if config is not None else None
        self.waits = TaskWaits(store)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> JobbersClient:
        settings = settings or Settings()
        store = TaskStore(
            connect(settings.redis_url, settings.redis_cluster),
            settings.redis_key_prefix,
            settings.audit_max_events,
        )
        return cls(store, ConfigStore(settings.sql_path))

    async def close(self) -> None:
        """Close the Redis and SQL connections."""
        await self.waits.close()
        await self.store.close()
        if self.config is not None:
            await self.config.close()

    async def _check_queue(self, queue: str) -> None:
        if self.queues is not None:
            await self.queues.require(queue)

    def build(
        self,
        name: str,
        params: dict[str, Any] | None = None,
        *,
        version: int = 1,
        queue: str = DEFAULT_QUEUE,
        run_at: dt.datetime | None = None,
        task_id: str | None = None,
        idempotency_key: str | None = None,
        trace: str | None = None,
        priority: int | None = None,
        correlation_id: str | None = None,
    ) -> NewTask:
        """A validated ``NewTask`` (not yet submitted). Its ``trace`` defaults to the current span, so
        the worker's ``task.execute`` span becomes that span's child. Raises ``InvalidParamsError``
        for params that do not fit the task, or that cannot be stored and shown again (see
        ``jobbers.json_values``); ``ValueError`` for a ``priority`` outside -100..100 (by default
        the registered task's, else 0; higher is claimed first within the queue), or a
        ``correlation_id`` that is not a string of 1 to 256 characters."""
        params = dict(params or {})
        check_correlation_id(correlation_id)
        if priority is not None and (not is_priority(priority)):
            raise ValueError(f"priority must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY}")
        check_params(params)
        config = find_task_config(name, version)
        if config is not None:
            validate_params(config, params)
        return build_new_task(
            config,
            name,
            params,
            version=version,
            queue=queue,
            task_id=task_id,
            run_at=run_at,
            idempotency_key=idempotency_key,
            trace=telemetry.current_traceparent() if trace is None else trace,
            priority=priority,
            correlation_id=correlation_id,
        )

    async def submit(self, name: str, params: dict[str, Any] | None = None, **options: Any) -> SubmitOutcome:
        """Submit one task now (or at ``run_at``) inside a ``task.submit`` span; 1 round trip to Redis."""
        with telemetry.submit_span(name, options.get("queue", DEFAULT_QUEUE)) as span:
            task = self.build(name, params, **options)
            await self._check_queue(task.queue)
            outcome = await self.store.submit(task)
            span.set_attribute("jobbers.task.id", outcome.id)
            return outcome

    async def submit_many(self, tasks: Sequence[NewTask]) -> list[SubmitOutcome]:
        """Submit many tasks built with ``build``, pipelined, atomically per task."""
        for queue in {t.queue for t in tasks}:
            await self._check_queue(queue)
        return await self.store.submit_many(tasks)

    async def get(self, task_id: str) -> Task:
        """The task's current record; raises ``TaskNotFoundError``."""
        task = await self.store.get_task(task_id)
        if task is None:
            raise TaskNotFoundError(f"no task {task_id}")
        return task

    async def wait(self, task_id: str, seconds: float = 30.0) -> Task:
        """The task once it reaches a terminal status, woken by the transition the finishing
        script publishes (no polling: the record is read when it changes, and re-read each second
        in case a notification was lost). Raises ``TaskNotFoundError``, or ``TimeoutError`` after
        ``seconds``."""
        task = await self.waits.until_terminal(task_id, seconds)
        if task is None:
            raise TaskNotFoundError(f"no task {task_id}")
        if not task.status.is_terminal:
            raise TimeoutError(f"task {task_id} still {task.status.value} after {seconds}s")
        return task

    async def cancel(self, task_id: str) -> CancelOutcome:
        """Cancel a task; raises ``TaskNotFoundError`` or ``TaskConflictError`` (not cancellable)."""
        (outcome,) = await self.store.cancel([task_id], by="the Python client")
        telemetry.record_cancellations([outcome])
        if outcome.outcome is CancelKind.NOT_FOUND:
            raise TaskNotFoundError(f"no task {task_id}")
        if outcome.outcome is CancelKind.CONFLICT:
            raise TaskConflictError(f"task {task_id} is {outcome.status} and cannot be cancelled")
        return outcome

    # -- external tasks (register_external_task) -------------------------------------------------

    async def claim_external(
        self,
        queue: str = DEFAULT_QUEUE,
        names: Sequence[str] | None = None,
        *,
        count: int = 1,
        lease_seconds: float = 300.0,
        claimer: str = external_tasks.DEFAULT_CLAIMER,
    ) -> list[external_tasks.ExternalClaim]:
        """Claim up to ``count`` ready tasks of external types (``names``; default: every external
        type registered here) of ``queue`` under a lease (as ``POST /tasks/claim``); each claim has
        the ``token`` that the heartbeat, complete and fail of its task must give."""
        return await external_tasks.claim_tasks(
            self.store, self.config, queue, names, count, lease_seconds, claimer
        )

    async def heartbeat_external(
        self, task_id: str, token: str, lease_seconds: float | None = None
    ) -> external_tasks.Heartbeat:
        """Renew the lease of a claimed external task (as ``POST /task/{id}/heartbeat``); raises
        ``TaskConflictError`` for a stale token. ``status`` ``cancelled``: stop working on it."""
        return await external_tasks.heartbeat_task(self.store, task_id, token, lease_seconds)

    async def complete_external(self, task_id: str, result: Any = None, token: str | None = None) -> Task:
        """End an external task ``completed`` (as ``POST /task/{id}/complete``): under its claim's
        ``token``, or without one while it is submitted; raises ``TaskConflictError`` otherwise."""
        return await external_tasks.complete_task(self.store, task_id, result, token=token)

    async def fail_external(
        self,
        task_id: str,
        error: str,
        *,
        retryable: bool = False,
        error_type: str = external_tasks.DEFAULT_ERROR_TYPE,
        token: str | None = None,
    ) -> Task:
        """Record a failed attempt of an external task (as ``POST /task/{id}/fail``): retried under
        its type's retry policy when ``retryable``, else failed (dead-lettered under ``save``)."""
        return await external_tasks.fail_task(
            self.store, task_id, error, retryable=retryable, error_type=error_type, token=token
        )

    # -- queue control ------------------------------------------------------------------------

    async def pause_queue(self, queue: str) -> None:
        """Pause ``queue``: it still takes submits and promotions, but no worker starts its tasks
        until ``resume_queue`` (running ones finish). Raises ``QueueNotFoundError`` for a queue
        that does not exist (checked when this client has a config store)."""
        await self._check_queue(queue)
        await self.store.pause_queue(queue)

    async def resume_queue(self, queue: str) -> None:
        """Resume ``queue``; idle workers pick its tasks up at once."""
        await self._check_queue(queue)
        await self.store.resume_queue(queue)

    async def clear_queue(self, queue: str) -> int:
        """End every task waiting in ``queue`` (ready and scheduled) ``cancelled``, with a
        ``cancel_reason`` saying the queue was cleared; returns how many."""
        await self._check_queue(queue)
        return await self.store.clear_queue(queue, f"queue {queue} was cleared")

    async def queue_stats(self, queue: str) -> QueueStats:
        """Whether ``queue`` is paused, its ready, scheduled and running tasks, the age of its
        oldest ready task and its tasks completed and failed over the last minute."""
        await self._check_queue(queue)
        (stats,) = await self.store.queue_stats([queue])
        return stats

    # -- recurring entries --------------------------------------------------------------------

    def _config_store(self) -> ConfigStore:
        if self.config is None:
            raise ConfigurationError("recurring entries live in SQL: give the client a ConfigStore")
        return self.config

    async def set_recurring(
        self,
        key: str,
        task: str | None = None,
        *,
        workflow: Workflow | None = None,
        skip_if_running: bool = False,
        workflow_name: str | None = None,
        cron: str | None = None,
        every: float | None = None,
        timezone: str | None = None,
        params: dict[str, Any] | None = None,
        version: int = 1,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        description: str = "",
        catch_up: bool = False,
        paused: bool = False,
    ) -> RecurringEntry:
        """Create or replace recurring entry ``key`` (as ``PUT /recurring/{key}``): submit ``task``,
        or a run of ``workflow`` (``skip_if_running``: not while its previous run is running), on
        the ``cron`` schedule (read in ``timezone``) or ``every`` seconds. Raises ``ValueError``
        for an invalid schedule or combination, ``InvalidParamsError`` for params a task registered
        here does not take, ``WorkflowGraphError`` for a workflow that cannot run, and
        ``QueueNotFoundError`` for a missing queue."""
        entry = make_entry(
            key, task, workflow=workflow, cron=cron, every=every, timezone=timezone, params=params,
            version=version, queue=queue, priority=priority, description=description, catch_up=catch_up,
            skip_if_running=skip_if_running, workflow_name=workflow_name,
        )  # fmt: skip
        if workflow is not None:
            try:
                await build_nodes("checked", specs_of(workflow, queue), require_registered=False)
            except WorkflowProblems as problems:
                raise problems.problems[0].error from None
        else:
            known = find_task_config(entry.task_name, version)
            if known is not None:
                validate_params(known, entry.params)
        store = self._config_store()
        existing = await store.get_recurring(key)
        entry = entry.with_changes(
            paused=paused,
            static=False,
            created_at_ms=existing.created_at_ms if existing else int(time.time() * 1000),
            last_fire_ms=existing.last_fire_ms if existing else None,
        )
        await store.save_recurring(entry)
        return entry

    async def recurring_entries(self) -> list[RecurringEntry]:
        """Every recurring entry, by key."""
        return await self._config_store().list_recurring()

    async def pause_recurring(self, key: str) -> RecurringEntry:
        """Stop firing entry ``key`` until ``resume_recurring``; raises ``ConfigNotFoundError``."""
        return await self._set_recurring_paused(key, True)

    async def resume_recurring(self, key: str) -> RecurringEntry:
        """Fire entry ``key`` again from its next fire time (what was missed meanwhile is skipped)."""
        return await self._set_recurring_paused(key, False)

    async def delete_recurring(self, key: str) -> None:
        """Delete entry ``key``; raises ``ConfigNotFoundError`` when there is none."""
        if not await self._config_store().delete_recurring(key):
            raise ConfigNotFoundError(f"no recurring entry {key!r}")

    async def _set_recurring_paused(self, key: str, paused: bool) -> RecurringEntry:
        entry = await set_recurring_paused(self._config_store(), key, paused)
        if entry is None:
            raise ConfigNotFoundError(f"no recurring entry {key!r}")
        return entry

    # -- workflows ---------------------------------------------------------------------------

    async def submit_workflow(
        self, run: Workflow, name: str = "", workflow_id: str | None = None
    ) -> WorkflowRun:
        """Submit workflow ``run`` (built with ``jobbers.workflows``) as one atomic write: its graph,
        and its first nodes ready. Each node's params are checked as ``build`` checks a task's (a
        node's ``results()`` / ``errors()`` param is filled in when it runs); the same
        ``workflow_id`` again changes nothing. Raises ``WorkflowGraphError`` naming the node at
        fault, ``InvalidParamsError``, or ``ConfigNotFoundError`` for an unknown queue."""
        workflow_id = workflow_id or new_task_id()
        try:
            nodes = await build_nodes(
                workflow_id,
                specs_of(run),
                require_registered=False,
                trace=telemetry.current_traceparent() or "",
            )
        except WorkflowProblems as problems:
            raise problems.problems[0].error from None
        for queue in sorted({n.task.queue for n in nodes}):
            await self._check_queue(queue)
        await submit_workflow(self.store, workflow_id, name, nodes)
        found = await get_workflow(self.store, workflow_id)
        assert found is not None  # just written
        return found

    async def get_workflow(self, workflow_id: str) -> WorkflowRun | None:
        """Workflow run ``workflow_id`` with every node's task id and status (``None``: unknown)."""
        return await get_workflow(self.store, workflow_id)

    async def cancel_workflow(self, workflow_id: str) -> WorkflowStatus | None:
        """Cancel every node of the run not yet ended; its status before (``None``: unknown)."""
        return await cancel_workflow(self.store, workflow_id)
