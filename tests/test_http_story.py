"""The README's story over HTTP, against real manager, worker and scheduler processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e import E2E
from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent


async def wait_http_ok(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer")
            await asyncio.sleep(0.1)


@pytest.fixture
async def http(e2e: E2E) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    e2e.platform.start("jobbers_manager", "tests.e2e_tasks", MANAGER_PORT=str(port), MANAGER_HOST="127.0.0.1")
    await wait_http_ok(f"http://127.0.0.1:{port}/healthz")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        yield client


async def wait_status(http: httpx.AsyncClient, task_id: str, *statuses: str, seconds: float = 20) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        body = (await http.get(f"/task-status/{task_id}")).json()
        if body["status"] in statuses:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} stuck in {body['status']}")
        await asyncio.sleep(0.05)


async def test_the_readme_story_over_http(e2e: E2E, http: httpx.AsyncClient) -> None:
    e2e.platform.worker()
    e2e.platform.scheduler()

    # Queues: create `reports` (the README's example); the default role picks it up by itself.
    r = await http.post("/queues", json={"name": "reports", "max_concurrent": 5, "rate_numerator": 100,
                                         "rate_denominator": 1, "rate_period": "hour"})
    assert r.status_code == 201, r.text

    # Submit, inspect, result.
    r = await http.post("/tasks", json={"name": "nap", "version": 1, "queue": "reports", "params": {"seconds": 0.2}})
    assert r.status_code == 201, r.text
    submitted = r.json()
    assert set(submitted) >= {"id", "name", "status", "queue", "submitted_at"} and submitted["status"] == "submitted"
    running = await wait_status(http, submitted["id"], "started", "completed")
    assert running["started_at"] and running["queue"] == "reports"
    done = await wait_status(http, submitted["id"], "completed")
    assert done["result"] == "rested" and done["completed_at"] and done["retry_attempt"] == 0
    listed = (await http.get("/tasks", params={"status": "completed", "queue": "reports"})).json()
    assert [t["id"] for t in listed["tasks"]] == [submitted["id"]]

    # Retry with backoff, then failure into the DLQ, its history, and a resubmit.
    flaky = (await http.post("/tasks", json={"name": "flaky", "params": {}})).json()
    failed = await wait_status(http, flaky["id"], "failed")
    assert failed["retry_attempt"] == 2 and failed["error"] == "ConnectionError: upstream timed out"
    dlq = (await http.get("/dead-letter-queue", params={"task_name": "flaky"})).json()
    assert [t["id"] for t in dlq["tasks"]] == [flaky["id"]]
    history = (await http.get(f"/dead-letter-queue/{flaky['id']}/history")).json()["history"]
    assert [h["attempt"] for h in history] == [0, 1, 2]
    assert {h["exception_type"] for h in history} == {"ConnectionError"}
    r = await http.post("/dead-letter-queue/resubmit", json={"task_name": "flaky", "reset_retry_count": True})
    assert r.status_code == 200 and r.json()["resubmitted"] == 1
    again = await wait_status(http, flaky["id"], "failed")
    assert again["retry_attempt"] == 2 and len(again["errors"]) == 6

    # Cancel in each state: scheduled, submitted (held back by a role without the queue), started.
    later = (await http.post("/tasks", json={"name": "noop", "delay": 60})).json()
    assert later["status"] == "scheduled"
    assert [t["id"] for t in (await http.get("/scheduled-tasks")).json()["tasks"]] == [later["id"]]
    assert (await http.post(f"/task/{later['id']}/cancel")).json()["status"] == "cancelled"
    long = (await http.post("/tasks", json={"name": "nap", "params": {"seconds": 30}})).json()
    await wait_status(http, long["id"], "started")
    active = (await http.get("/active-tasks")).json()["tasks"]
    assert [t["id"] for t in active] == [long["id"]] and active[0]["worker_id"]
    assert (await http.post(f"/task/{long['id']}/cancel")).status_code == 200
    await wait_status(http, long["id"], "cancelled", seconds=5)
    r = await http.post(f"/task/{long['id']}/cancel")
    assert r.status_code == 409

    # Role changes reach the running worker: give `default` only the `default` queue.
    r = await http.put("/roles/default", json={"queues": ["default"]})
    assert r.status_code in (200, 201), r.text
    await asyncio.sleep(0.6)  # > WORKER_REFRESH_INTERVAL
    waiting = (await http.post("/tasks", json={"name": "noop", "queue": "reports"})).json()
    await asyncio.sleep(0.5)
    assert (await http.get(f"/task-status/{waiting['id']}")).json()["status"] == "submitted"
    r = await http.post("/tasks/cancel", json={"task_ids": [waiting["id"]]})
    assert r.json()["results"][0]["outcome"] == "cancelled"
    r = await http.put("/roles/default", json={"queues": ["default", "reports"]})
    picked = (await http.post("/tasks", json={"name": "noop", "queue": "reports"})).json()
    await wait_status(http, picked["id"], "completed")
