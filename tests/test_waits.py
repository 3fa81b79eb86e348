"""Waiting for a result without polling: ``JobbersClient.wait``, ``/task-status/{id}?wait=`` and
the server-sent event stream of one task, woken by the transitions the state scripts publish."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from jobbers.client import JobbersClient
from jobbers.config_store import ConfigStore
from jobbers.errors import TaskNotFoundError
from jobbers.manager import create_app
from jobbers.models.task import TaskStatus
from jobbers.registry import register_task
from jobbers.settings import Settings
from jobbers.state.connection import connect
from jobbers.state.store import TaskStore
from jobbers.state.waits import TaskWaits
from jobbers.worker import Worker
from tests.e2e import E2E
from tests.manager_support import running
from tests.redis_server import RedisServer
from tests.test_worker import Runner, client, config, run_worker, settings  # noqa: F401  (fixtures)


@pytest.fixture(autouse=True)
def tasks() -> None:
    @register_task(name="pause_then_answer")
    async def pause_then_answer(seconds: float = 0.3) -> str:
        await asyncio.sleep(seconds)
        return "answer"


async def test_wait_is_woken_by_the_finish_not_by_rereading(run_worker: Runner, client: JobbersClient) -> None:
    client.waits.recheck = 60  # a re-read would come a minute late: only the notification can wake it
    await run_worker()
    sub = await client.submit("pause_then_answer", {"seconds": 0.3})
    started = time.monotonic()

    task = await client.wait(sub.id, 30)

    assert task.status is TaskStatus.COMPLETED and task.result == "answer"
    assert time.monotonic() - started < 10


async def test_many_waits_at_once_share_one_subscription(run_worker: Runner, client: JobbersClient) -> None:
    client.waits.recheck = 60
    await run_worker(worker_concurrent_tasks=20)
    subs = [await client.submit("pause_then_answer", {"seconds": 0.05 * i}) for i in range(20)]

    done = await asyncio.gather(*(client.wait(s.id, 30) for s in subs))

    assert [t.id for t in done] == [s.id for s in subs]
    assert {t.status for t in done} == {TaskStatus.COMPLETED}
    assert client.waits._waiting == {}  # every waiter unregistered


async def test_wait_still_ends_when_every_notification_is_lost(run_worker: Runner, client: JobbersClient) -> None:
    client.waits._received = lambda message: None  # type: ignore[method-assign]
    client.waits.recheck = 0.2
    await run_worker()
    sub = await client.submit("pause_then_answer", {"seconds": 0.1})

    task = await client.wait(sub.id, 30)

    assert task.status is TaskStatus.COMPLETED


async def test_wait_times_out_and_names_the_status(client: JobbersClient) -> None:
    sub = await client.submit("pause_then_answer")  # no worker: it stays submitted

    with pytest.raises(TimeoutError, match="still submitted after 0.3s"):
        await client.wait(sub.id, 0.3)
    with pytest.raises(TaskNotFoundError):
        await client.wait("01ARZ3NDEKTSV4RRFFQ69G5FAV", 0.3)


async def test_a_wait_across_a_redis_restart_still_sees_the_end(
    fresh_redis_server: RedisServer, key_prefix: str, sqlite_url: str
) -> None:
    settings = Settings(redis_url=fresh_redis_server.url, redis_key_prefix=key_prefix, sql_path=sqlite_url,
                        worker_ttl=0, worker_lease_seconds=2, worker_refresh_interval=0.1)  # fmt: skip
    store = TaskStore(connect(settings.redis_url), key_prefix)
    client = JobbersClient(store)
    client.waits.recheck = 60  # after the restart, the re-subscription triggers the re-read
    sub = await client.submit("pause_then_answer")
    waiting = asyncio.create_task(client.wait(sub.id, 60))
    await asyncio.sleep(0.3)

    fresh_redis_server.kill()
    await asyncio.sleep(0.5)
    fresh_redis_server.start()  # AOF: the submitted task is still there
    config = ConfigStore(sqlite_url)
    await config.migrate()
    worker = Worker(settings, TaskStore(connect(settings.redis_url), key_prefix), config)
    running_worker = asyncio.create_task(worker.run(handle_signals=False))
    try:
        task = await asyncio.wait_for(waiting, 30)
        assert task.status is TaskStatus.COMPLETED
    finally:
        worker.request_shutdown()
        await asyncio.wait_for(running_worker, 10)
        await client.close()
        await config.close()


async def test_waits_are_closed_and_reopen_on_a_new_loop(store: TaskStore) -> None:
    waits = TaskWaits(store)
    assert await waits.until_terminal("01ARZ3NDEKTSV4RRFFQ69G5FAV", 0.1) is None
    await waits.close()
    assert waits._task is None


# -- REST ------------------------------------------------------------------------------------


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:  # noqa: F811
    async for client in running(create_app(settings)):
        yield client


async def test_task_status_with_wait_answers_once_the_task_ends(api: httpx.AsyncClient, run_worker: Runner) -> None:
    sub = (await api.post("/tasks", json={"name": "pause_then_answer", "params": {"seconds": 0.3}})).json()
    await run_worker()

    answer = await api.get(f"/task-status/{sub['id']}", params={"wait": 30})

    assert answer.status_code == 200 and answer.json()["status"] == "completed"
    assert answer.json()["result"] == "answer"


async def test_task_status_with_wait_answers_the_current_record_when_the_wait_runs_out(
    api: httpx.AsyncClient,
) -> None:
    sub = (await api.post("/tasks", json={"name": "pause_then_answer"})).json()

    answer = await api.get(f"/task-status/{sub['id']}", params={"wait": 0.2})

    assert answer.status_code == 200 and answer.json()["status"] == "submitted"


@pytest.mark.parametrize(
    ("suffix", "wait"), [("", "0"), ("", "-1"), ("", "soon"), ("", "301"), ("/stream", "0"), ("/stream", "3601")]
)
async def test_a_bad_wait_is_a_422_naming_it(api: httpx.AsyncClient, suffix: str, wait: str) -> None:
    sub = (await api.post("/tasks", json={"name": "pause_then_answer"})).json()

    answer = await api.get(f"/task-status/{sub['id']}{suffix}", params={"wait": wait})

    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["query", "wait"]


async def test_waiting_on_an_unknown_task_is_a_404(api: httpx.AsyncClient) -> None:
    unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    assert (await api.get(f"/task-status/{unknown}", params={"wait": 1})).status_code == 404
    assert (await api.get(f"/task-status/{unknown}/stream")).status_code == 404


def _events(body: str) -> list[tuple[str, dict[str, object]]]:
    out = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields["event"], json.loads(fields["data"])))
    return out


async def test_the_stream_sends_each_change_and_closes_after_the_end(e2e: E2E) -> None:
    manager = e2e.platform.manager()
    sub = await e2e.client.submit("nap", {"seconds": 0.5})
    async with httpx.AsyncClient(base_url=manager.url, timeout=30) as http:
        async with http.stream("GET", f"/task-status/{sub.id}/stream") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            chunks = stream.aiter_text()
            first = await anext(chunks)  # arrives before any worker runs the task
            assert _events(first)[0][1]["status"] == "submitted"
            e2e.platform.worker()
            body = first + "".join([c async for c in chunks])

    events = _events(body)
    statuses = [data["status"] for _, data in events]
    assert {name for name, _ in events} == {"task"}
    assert statuses[0] == "submitted" and statuses[-1] == "completed" and "started" in statuses
    assert events[-1][1]["result"] == "rested"
