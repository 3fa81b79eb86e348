"""Shutdown that begins while a claim is in flight: the tasks it hands out still get their
``on_shutdown`` policy, and none runs its body after the worker was told to stop."""

from __future__ import annotations

import asyncio
from typing import Any

from jobbers.client import JobbersClient
from jobbers.config_store import ConfigStore
from jobbers.models.task import TaskStatus
from jobbers.registry import register_task
from jobbers.settings import Settings
from jobbers.state.store import TaskStore
from jobbers.worker import Worker
from tests.test_worker import config, settings  # noqa: F401  (fixtures)


async def test_a_claim_in_flight_when_shutdown_begins_gets_each_shutdown_policy(
    settings: Settings, store: TaskStore, config: ConfigStore  # noqa: F811
) -> None:
    ran: list[str] = []

    @register_task(name="resubmit_me", on_shutdown="resubmit")
    async def resubmit_me() -> None:
        ran.append("resubmit_me")
        await asyncio.sleep(5)

    @register_task(name="stop_me", on_shutdown="stop")
    async def stop_me() -> None:
        ran.append("stop_me")
        await asyncio.sleep(5)

    client = JobbersClient(store, config, queue_cache_seconds=0)
    ids = [(await client.submit("resubmit_me")).id, (await client.submit("stop_me")).id]
    worker = Worker(settings, store, config)
    real_claim = store.claim

    async def claim_then_signal(*args: Any, **kwargs: Any) -> Any:
        result = await real_claim(*args, **kwargs)
        if result.tasks:
            worker.request_shutdown()  # SIGTERM lands while the claim's answer is on its way
        return result

    store.claim = claim_then_signal  # type: ignore[method-assign]
    await asyncio.wait_for(worker.run(handle_signals=False), 15)

    resubmitted, stopped = await store.get_tasks(ids)
    assert ran == []  # neither body ran after shutdown had begun
    assert resubmitted.status is TaskStatus.SUBMITTED and resubmitted.stall_count == 0
    assert stopped.status is TaskStatus.STALLED and stopped.errors[-1].exception_type == "WorkerShutdown"
