"""Building the ``NewTask`` a submission writes: one builder for the manager and the Python client.

It fills what the registry knows about the task (its stall and dead-letter options, stored with it
so lease recovery can judge it before a worker has published its config) and, when the request has
an Idempotency-Key, the request's fingerprint, so a retry with the same key but another body is
refused instead of answered with the first task.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from jobbers.models.queue_config import DEFAULT_QUEUE
from jobbers.models.task_config import DeadLetterPolicy, TaskConfig
from jobbers.registry import format_concurrency_key
from jobbers.state.records import NewTask, RequestKey, new_task_id


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def request_fingerprint(
    name: str,
    version: int,
    queue: str,
    params: Any,
    schedule: str,
    priority: int | None = None,
    correlation_id: str | None = None,
) -> str:
    """A hash of what a submit request asks for: name, version, queue, params (key order aside),
    ``schedule`` (the request's own words, e.g. ``delay=60``, so a retried request matches) and the
    priority and correlation id when the request gives them."""
    asked: list[Any] = [name, version, queue, params, schedule]
    if priority is not None:
        asked.append({"priority": priority})
    if correlation_id is not None:
        asked.append({"correlation_id": correlation_id})
    body = json.dumps(asked, sort_keys=True, separators=(",", ":"), default=str)
    return _digest(body)


def schedule_of(run_at: dt.datetime | None = None, delay: float | None = None) -> str:
    """How a request asked to be scheduled, as fingerprinted: ``delay=<s>``, ``run_at=<iso>`` or ""."""
    if delay is not None:
        return f"delay={delay!r}"
    if run_at is not None:
        return "run_at=" + (run_at if run_at.tzinfo else run_at.replace(tzinfo=dt.UTC)).isoformat()
    return ""


def build_new_task(
    config: TaskConfig | None,
    name: str,
    params: dict[str, Any],
    *,
    version: int = 1,
    queue: str = DEFAULT_QUEUE,
    task_id: str | None = None,
    run_at: dt.datetime | None = None,
    schedule: str | None = None,
    idempotency_key: str | None = None,
    trace: str = "",
    priority: int | None = None,
    recurring_key: str | None = None,
    recurring_at_ms: int | None = None,
    correlation_id: str | None = None,
) -> NewTask:
    """The ``NewTask`` for a request (``config``: the registered task, when this process knows it).

    ``schedule`` is what the request said about its run time (``schedule_of``); by default, ``run_at``.
    ``priority`` defaults to the registered task's (``@register_task(priority=...)``), else 0.
    """
    fingerprint = ""
    if idempotency_key:
        asked = schedule_of(run_at) if schedule is None else schedule
        fingerprint = request_fingerprint(name, version, queue, params, asked, priority, correlation_id)
    return NewTask(
        name=name,
        version=version,
        queue=queue,
        params=params,
        id=task_id or new_task_id(),
        run_at=run_at,
        idempotency_key=idempotency_key or None,
        fingerprint=fingerprint,
        max_stalls=config.max_stalls if config else None,
        max_heartbeat_interval=config.max_heartbeat_interval if config else None,
        dead_letter=(config.dead_letter_policy is DeadLetterPolicy.SAVE) if config else None,
        trace=trace,
        priority=priority if priority is not None else (config.priority if config else 0),
        recurring_key=recurring_key,
        recurring_at_ms=recurring_at_ms,
        correlation_id=correlation_id,
        external=bool(config and config.external),
        **_concurrency(config, params),
    )


def _concurrency(config: TaskConfig | None, params: dict[str, Any]) -> dict[str, Any]:
    """The concurrency fields of a task (none when its task has no concurrency key); raises
    ``InvalidParamsError`` for a missing param the key is formatted from."""
    key = format_concurrency_key(config, params) if config else None
    if key is None:
        return {}
    assert config is not None
    return {
        "concurrency_key": key,
        "concurrency_limit": config.concurrency_limit,
        "concurrency_duration": dt.timedelta(seconds=config.concurrency_duration),
        "on_conflict": config.on_conflict.value,
    }


def bulk_request_key(tasks: Sequence[NewTask], idempotency_key: str | None) -> RequestKey | None:
    """The whole-request key of a bulk submit (its items carry ``<key>:<index>``), fingerprinted by
    all its items, so the same key with a different list conflicts as a whole."""
    if not idempotency_key:
        return None
    return RequestKey(idempotency_key, _digest("bulk\n" + "\n".join(t.fingerprint for t in tasks)))
