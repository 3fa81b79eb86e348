"""The task schema: every declared field is carried from submit through the claim to /task-status,
and the classes that hold a task agree with the declaration."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import httpx

from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import Task
from jobbers.state.records import ClaimedTask, NewTask, Outcome
from jobbers.state.store import TaskStore, new_task_id
from jobbers.state.task_schema import (
    CLAIM_ADDS,
    CLAIMED_FIELDS,
    FINISH_ROW,
    SHOWN_FIELDS,
    SUBMIT_EXTRAS,
    SUBMITTED_FIELDS,
    TASK_FIELDS,
)
from tests.manager_support import api, manager_settings, registered

__all__ = ["api", "manager_settings", "registered"]  # fixtures used by this module

#: A distinctive value for every submitted field (by its NewTask attribute). A newly declared
#: submitted field needs one here, so this test proves it is carried.
SAMPLES: dict[str, Any] = {
    "id": new_task_id(),
    "name": "carried",
    "version": 7,
    "queue": "carry-queue",
    "params": {"text": "x", "n": 2**40, "nested": {"list": [1, 2]}},
    "trace": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "correlation_id": "agent-session-42",
    "max_stalls": 5,
    "max_heartbeat_interval": dt.timedelta(seconds=3),
    "dead_letter": True,
    "priority": 7,
    "concurrency_key": "account:42",
    "concurrency_limit": 3,
    "concurrency_duration": dt.timedelta(seconds=4),
    "on_conflict": "block",
    "recurring_key": "nightly-report",
    "recurring_at_ms": 1_764_633_600_000,
    "workflow_id": "run-2025-12-02",
    "workflow_node": "extract",
    # True would keep it from any worker's claim: tests/test_external_tasks.py carries that value.
    "external": False,
}
#: What /task-status shows for the samples it shows in another form than submitted.
SHOWN_AS: dict[str, Any] = {"recurring_at_ms": "2025-12-02T00:00:00Z"}
#: What each of those looks like stored in the task record (bytes).
STORED: dict[str, bytes] = {
    "max_stalls": b"5",
    "max_heartbeat_interval": b"3000",
    "dead_letter": b"save",
    "concurrency_limit": b"3",
    "concurrency_duration": b"4000",
    "on_conflict": b"block",
    "recurring_at_ms": b"1764633600000",
}


def test_every_submitted_field_has_a_sample() -> None:
    assert {f.submit for f in SUBMITTED_FIELDS} == set(SAMPLES)


def test_new_task_has_exactly_the_submitted_fields() -> None:
    declared = {f.submit for f in SUBMITTED_FIELDS} | {f.attr for f in SUBMIT_EXTRAS}
    assert {f.name for f in dataclasses.fields(NewTask)} == declared


def test_claimed_task_fields_are_the_claim_row_in_order() -> None:
    assert ClaimedTask._fields == tuple(f.claim for f in CLAIMED_FIELDS) + tuple(f.attr for f in CLAIM_ADDS)


def test_task_shows_exactly_the_shown_fields() -> None:
    assert set(Task.model_fields) == {f.show for f in SHOWN_FIELDS}


def test_outcome_fields_are_the_finish_row() -> None:
    assert [f.name for f in dataclasses.fields(Outcome)] == [f.attr for f in FINISH_ROW]


def test_record_keys_are_unique() -> None:
    keys = [f.key for f in TASK_FIELDS]
    assert len(keys) == len(set(keys))


async def test_every_declared_field_is_carried_from_submit_to_claim_and_task_status(
    api: httpx.AsyncClient, store: TaskStore
) -> None:
    submitted = await store.submit(NewTask(**SAMPLES))
    assert submitted.created

    (claimed,) = (await store.claim("w", 30, 1, [QueueConfig(name=SAMPLES["queue"])])).tasks
    shown = (await api.get(f"/task-status/{submitted.id}")).json()
    record = await store.redis.hgetall(store.keys.space(SAMPLES["queue"]).task(submitted.id))

    for field in SUBMITTED_FIELDS:
        assert field.submit is not None
        sample = SAMPLES[field.submit]
        if field.claim:
            assert getattr(claimed, field.claim) == sample, field.key
        if field.show:
            assert shown[field.show] == SHOWN_AS.get(field.submit, sample), field.key
        if not (field.claim or field.show):
            assert record[field.key.encode()] == STORED[field.submit], field.key
    for field in CLAIMED_FIELDS:  # the fields the scripts write are in the claim too
        if not field.submit:
            assert getattr(claimed, field.claim or "") == field.claim_decode(record.get(field.key.encode()))
