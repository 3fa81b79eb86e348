"""Externally completed tasks: the one implementation behind ``POST /tasks/claim``, the task
heartbeat / complete / fail endpoints, ``JobbersClient`` and the MCP server.

A type declared with ``register_external_task`` has no function; an outside process claims its
tasks under a lease and reports their outcome. Every write is fenced by the lease token exactly
as a worker's is (the same scripts), so a late writer whose lease was recovered is refused
(``TaskConflictError``: 409). A ``submitted`` external task may also be completed or failed
without a claim. A failure says whether it is retryable; the declaration's retry policy and
dead-letter policy decide what follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jobbers.config_store import ConfigStore
from jobbers.config_store.queue_directory import queue_not_found
from jobbers.errors import InvalidParamsError, TaskConflictError, TaskNotFoundError, UnknownTaskError
from jobbers.models.outcomes import RetryKind
from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import Task, TaskStatus
from jobbers.registry import find_task_config, registered_tasks
from jobbers.state.codec import pack
from jobbers.state.external import (
    ExternalClaim,
    LeaseState,
    claim_external,
    lease_state,
    new_direct_token,
    renew_external,
    take_and_finish,
)
from jobbers.state.records import Outcome
from jobbers.state.store import TaskStore

#: Who claimed a task when the claimer gives no name (shown as the task's ``worker_id``).
DEFAULT_CLAIMER = "external"
#: The error type stored for a ``fail`` that names none.
DEFAULT_ERROR_TYPE = "ExternalTaskError"

__all__ = [
    "DEFAULT_CLAIMER",
    "DEFAULT_ERROR_TYPE",
    "ExternalClaim",
    "Heartbeat",
    "claim_tasks",
    "complete_task",
    "external_task_names",
    "fail_task",
    "heartbeat_task",
]


def external_task_names() -> list[str]:
    """The names of every external type registered in this process, sorted."""
    return sorted({c.name for c in registered_tasks() if c.external})


def _check_names(names: Sequence[str]) -> list[str]:
    external = set(external_task_names())
    known = {c.name for c in registered_tasks()}
    for name in names:
        if name not in known:
            raise UnknownTaskError(f"no task {name!r} is registered")
        if name not in external:
            raise InvalidParamsError(f"task {name!r} is run by workers; only external tasks can be claimed")
    return list(dict.fromkeys(names))


async def claim_tasks(
    store: TaskStore,
    config: ConfigStore | None,
    queue: str,
    names: Sequence[str] | None = None,
    count: int = 1,
    lease_seconds: float = 300.0,
    claimer: str = DEFAULT_CLAIMER,
) -> list[ExternalClaim]:
    """Claim up to ``count`` ready tasks of ``queue`` of the external types ``names`` (default:
    every external type registered here) under a lease of ``lease_seconds``, oldest first.

    Raises ``QueueNotFoundError`` for a queue ``config`` does not have (without ``config``, the
    queue's limits are not applied), ``UnknownTaskError`` for an unknown name,
    ``InvalidParamsError`` for a name of a type workers run. A paused queue hands out nothing.
    """
    asked = _check_names(names) if names else external_task_names()
    queue_config = await config.get_queue(queue) if config is not None else QueueConfig(name=queue)
    if queue_config is None:
        raise queue_not_found(queue)
    return await claim_external(store, queue_config, asked, count, lease_seconds, claimer)


async def _state(store: TaskStore, task_id: str) -> LeaseState:
    state = await lease_state(store, task_id)
    if state is None:
        raise TaskNotFoundError(f"no task {task_id}")
    if not state.external:
        raise TaskConflictError(f"task {task_id} is run by a worker; only external tasks are ended over HTTP")
    return state


def _stale(state: LeaseState) -> TaskConflictError:
    if state.status is not TaskStatus.STARTED:
        return TaskConflictError(f"task {state.id} is {state.status.value}; its lease is no longer held")
    return TaskConflictError(f"task {state.id}: the token is not that of its current lease (a late write)")


@dataclass(frozen=True)
class Heartbeat:
    """What a heartbeat did: the lease was renewed for ``lease_seconds``, or the task's
    cancellation was requested, and it is now ``cancelled`` (stop working on it)."""

    status: TaskStatus
    cancel_requested: bool
    lease_seconds: float


async def heartbeat_task(
    store: TaskStore,
    task_id: str,
    token: str,
    lease_seconds: float | None = None,
    progress: tuple[float, float | None, str | None] | None = None,
) -> Heartbeat:
    """Renew the lease of a claimed external task (for ``lease_seconds``, by default the length
    it was claimed with) and record a heartbeat, and ``progress`` (current, total, message) when
    given. A task whose cancellation was requested ends
    ``cancelled`` here. Raises ``TaskNotFoundError`` or ``TaskConflictError`` (stale token, or
    the task is no longer started)."""
    state = await _state(store, task_id)
    if state.status is not TaskStatus.STARTED or state.token != token:
        raise _stale(state)
    seconds = lease_seconds if lease_seconds is not None else (state.lease_ms or 300_000) / 1000
    renewed, cancel = await renew_external(store, state, token, seconds, progress)
    if not renewed:
        raise _stale(await _state(store, task_id))
    if cancel:
        (written,) = await store.finish([Outcome(id=task_id, token=token, status=TaskStatus.CANCELLED)])
        if written:
            return Heartbeat(TaskStatus.CANCELLED, True, 0.0)
        raise _stale(await _state(store, task_id))
    return Heartbeat(TaskStatus.STARTED, False, seconds)


async def _write(
    store: TaskStore, state: LeaseState, token: str | None, claimer: str, outcome: Outcome
) -> Task:
    if token is None:
        if state.status is not TaskStatus.SUBMITTED:
            raise TaskConflictError(
                f"task {state.id} is {state.status.value}: only a submitted task is ended without "
                "a claim; give the token of its claim"
            )
        written = await take_and_finish(store, state, claimer, outcome)
    else:
        if state.status is not TaskStatus.STARTED or state.token != token:
            raise _stale(state)
        (written,) = await store.finish([outcome])
    if not written:
        raise _stale(await _state(store, state.id))
    task = await store.get_task(state.id)
    assert task is not None  # just written; records are pruned only long after they end
    return task


async def complete_task(
    store: TaskStore,
    task_id: str,
    result: Any = None,
    token: str | None = None,
    claimer: str = DEFAULT_CLAIMER,
) -> Task:
    """End external task ``task_id`` ``completed`` with ``result`` (anything JSON holds). With
    ``token``: the task must be started under that lease; without: it must be ``submitted``.
    Raises ``TaskNotFoundError`` or ``TaskConflictError``; returns the task as it now is."""
    state = await _state(store, task_id)
    packed = b"" if result is None else pack(result)
    outcome = Outcome(
        id=task_id, token=token or new_direct_token(claimer), status=TaskStatus.COMPLETED, result=packed
    )
    return await _write(store, state, token, claimer, outcome)


async def fail_task(
    store: TaskStore,
    task_id: str,
    error: str,
    *,
    retryable: bool = False,
    error_type: str = DEFAULT_ERROR_TYPE,
    token: str | None = None,
    claimer: str = DEFAULT_CLAIMER,
) -> Task:
    """Record a failed attempt of external task ``task_id``. Retryable and within the type's
    ``max_retries``: back to its queue after the backoff delay (``scheduled``, or ``submitted``
    when there is none); otherwise ``failed`` (dead-lettered under ``DeadLetterPolicy.SAVE``).
    A process that does not know the type (its module not loaded) fails it for good.
    Token rules and errors as for ``complete_task``."""
    state = await _state(store, task_id)
    config = find_task_config(state.name, state.version)
    retry, delay, dead_letter = (
        config.after_failure(state.retry_attempt, retryable) if config else (False, 0.0, False)
    )
    outcome = Outcome(
        id=task_id,
        token=token or new_direct_token(claimer),
        status=RetryKind.RETRY if retry else TaskStatus.FAILED,
        error_type=error_type,
        error_message=error,
        retry_attempt=state.retry_attempt + 1 if retry else None,
        delay_ms=int(delay * 1000),
        dead_letter=dead_letter,
    )
    return await _write(store, state, token, claimer, outcome)
