"""The allowed-transition table, and that the Lua scripts refuse moves outside it."""

import pytest

from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import ALLOWED_TRANSITIONS, TERMINAL_STATUSES, TaskStatus, is_transition_allowed
from jobbers.state.store import NewTask, Outcome, TaskStore

DEFAULT = [QueueConfig(name="default")]


def test_table_covers_every_status() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(TaskStatus)


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES - {TaskStatus.FAILED, TaskStatus.STALLED}))
def test_completed_cancelled_dropped_are_final(status: TaskStatus) -> None:
    assert not ALLOWED_TRANSITIONS[status]


def test_only_started_can_complete() -> None:
    assert is_transition_allowed(TaskStatus.STARTED, TaskStatus.COMPLETED)
    for status in TaskStatus:
        if status is not TaskStatus.STARTED:
            assert not is_transition_allowed(status, TaskStatus.COMPLETED)


async def test_finish_refuses_a_task_that_is_not_started(store: TaskStore) -> None:
    sub = await store.submit(NewTask(name="t"))
    assert await store.finish([Outcome(id=sub.id, token="x", status="completed")]) == [False]
    task = await store.get_task(sub.id)
    assert task is not None and task.status is TaskStatus.SUBMITTED


async def test_finish_refuses_a_wrong_lease_token(store: TaskStore) -> None:
    sub = await store.submit(NewTask(name="t"))
    claimed = (await store.claim("w", 30, 1, DEFAULT)).tasks[0]
    assert await store.finish([Outcome(id=sub.id, token=claimed.token + "x", status="completed")]) == [False]
    assert await store.finish([Outcome(id=sub.id, token=claimed.token, status="completed")]) == [True]
    # a second terminal write for the same attempt is refused: exactly one terminal state
    assert await store.finish([Outcome(id=sub.id, token=claimed.token, status="failed")]) == [False]
    task = await store.get_task(sub.id)
    assert task is not None and task.status is TaskStatus.COMPLETED


async def test_cancel_of_terminal_task_is_a_conflict(store: TaskStore) -> None:
    sub = await store.submit(NewTask(name="t"))
    claimed = (await store.claim("w", 30, 1, DEFAULT)).tasks[0]
    await store.finish([Outcome(id=sub.id, token=claimed.token, status="completed")])
    (outcome,) = await store.cancel([sub.id])
    assert (outcome.outcome, outcome.status) == ("conflict", "completed")


async def test_every_script_transition_is_in_the_table(store: TaskStore) -> None:
    """Walk each script's transitions and check the status zsets agree with the table."""
    seen: list[tuple[TaskStatus, TaskStatus]] = []

    async def status(task_id: str) -> TaskStatus:
        task = await store.get_task(task_id)
        assert task is not None
        return task.status

    async def track(task_id: str, before: TaskStatus) -> TaskStatus:
        after = await status(task_id)
        if after is not before:
            seen.append((before, after))
        return after

    a = (await store.submit(NewTask(name="t"))).id
    claim = (await store.claim("w", 30, 1, DEFAULT)).tasks[0]
    await track(a, TaskStatus.SUBMITTED)
    await store.finish([Outcome(id=a, token=claim.token, status="retry", delay_ms=60_000)])
    await track(a, TaskStatus.STARTED)
    await store.cancel([a])
    await track(a, TaskStatus.SCHEDULED)
    for (old, new) in seen:
        assert is_transition_allowed(old, new), (old, new)
    assert seen == [(TaskStatus.SUBMITTED, TaskStatus.STARTED), (TaskStatus.STARTED, TaskStatus.SCHEDULED),
                    (TaskStatus.SCHEDULED, TaskStatus.CANCELLED)]
