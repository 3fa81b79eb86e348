"""``jobbers_dev``, the local platform: its own Redis (or the one it is told to use, said out loud),
a worker that runs until stopped, the cleaner on a schedule, and nothing left behind at stop."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path

import httpx
import redis

from tests.dev_platform import DevProcess, clean_env
from tests.redis_server import RedisServer, free_port

JOBBERS_DEV = str(Path(sys.executable).parent / "jobbers_dev")
RUNNING = r"Jobbers is running\. API docs: (http://127\.0\.0\.1:\d+)/docs"


async def wait_completed(client: httpx.AsyncClient, task_ids: list[str], seconds: float = 60) -> list[dict]:
    deadline = time.monotonic() + seconds
    while True:
        tasks = [(await client.get(f"/task-status/{i}")).json() for i in task_ids]
        if all(t["status"] == "completed" for t in tasks):
            return tasks
        assert time.monotonic() < deadline, [t["status"] for t in tasks]
        await asyncio.sleep(0.1)


async def test_jobbers_dev_runs_a_whole_platform_on_its_own_redis_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    dev = DevProcess([JOBBERS_DEV, "--port", str(free_port()), "--cleaner-interval", "0.5"], tmp_path,
                     clean_env())  # fmt: skip
    try:
        base = dev.wait_for_line(RUNNING).group(1)
        folder = Path(dev.wait_for_line(r"config in sqlite\+aiosqlite:///(\S+)/jobbers\.db").group(1))
        redis_url = dev.wait_for_line(r"started an embedded Redis \(.*\) at (redis://127\.0\.0\.1:\d+)").group(1)
        assert folder.name.startswith("jobbers-dev-") and folder.is_dir()
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            r = await client.post("/tasks", json={"name": "generate_report", "params": {"report_id": 42}})
            assert r.status_code == 201, r.text
            # More tasks than the WORKER_TTL default (50): one worker process runs them all.
            bulk = await client.post("/tasks/bulk", json={"tasks": [{"name": "noop"} for _ in range(120)]})
            assert bulk.status_code in (200, 201), bulk.text
            ids = [r.json()["id"]] + [t["id"] for t in bulk.json()["tasks"]]
            done = await wait_completed(client, ids)
            assert done[0]["result"] == {"url": "/reports/42.pdf"}
            stats = (await client.get("/stats")).json()
        assert [w["processed"] for w in stats["workers"]] == [121]
        dev.wait_for_line(r"cleaner done: ")  # the launcher runs the cleaner on its schedule
    finally:
        code = dev.stop()

    out = dev.output
    assert code == 0, out
    assert "restarting" not in out and "Traceback" not in out
    assert not folder.exists(), "the temporary folder (Redis data, SQLite) is left behind"
    assert not (tmp_path / "jobbers.db").exists()  # nothing written in the working directory
    with socket.socket() as probe:  # the embedded Redis is gone too
        assert probe.connect_ex(("127.0.0.1", int(redis_url.rsplit(":", 1)[1]))) != 0


async def test_jobbers_dev_uses_the_redis_it_is_given_and_says_what_is_already_there(
    fresh_redis_server: RedisServer, tmp_path: Path
) -> None:
    theirs = redis.Redis.from_url(fresh_redis_server.url)
    theirs.set("their:data", "keep me")
    dev = DevProcess([JOBBERS_DEV, "--port", str(free_port())], tmp_path,
                     clean_env(REDIS_URL=fresh_redis_server.url, REDIS_KEY_PREFIX="{devtest}:"))  # fmt: skip
    try:
        base = dev.wait_for_line(RUNNING).group(1)
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            r = await client.post("/tasks", json={"name": "add", "params": {"x": 1, "y": 2}})
            assert (await wait_completed(client, [r.json()["id"]]))[0]["result"] == 3
    finally:
        assert dev.stop() == 0, dev.output

    out = dev.output
    assert f"using the Redis at {fresh_redis_server.url}" in out
    assert "already holds 1 other keys; Jobbers writes only keys under '{devtest}:'" in out
    assert "started an embedded Redis" not in out
    assert theirs.get("their:data") == b"keep me"
    assert all(k.startswith((b"{devtest}:", b"{devtest:")) for k in theirs.keys() if k != b"their:data")
    # Given a Redis but no SQL_PATH, it uses the default SQL_PATH, as the other processes would.
    assert "config in sqlite+aiosqlite:///jobbers.db (SQL_PATH)" in out and (tmp_path / "jobbers.db").exists()
    theirs.close()


def test_jobbers_dev_refuses_a_given_redis_that_does_not_answer(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}"
    dev = DevProcess([JOBBERS_DEV, "--redis-url", url], tmp_path, clean_env())
    code = dev.proc.wait(60)
    dev.stop()

    assert code == 1 and "Traceback" not in dev.output
    assert dev.output.strip().splitlines()[-1].startswith(f"jobbers_dev: no Redis answers at {url}")


def test_jobbers_dev_on_a_busy_port_says_how_to_move_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        dev = DevProcess([JOBBERS_DEV, "--port", str(port)], tmp_path, clean_env())
        code = dev.proc.wait(60)
        dev.stop()

    assert code == 1 and "Traceback" not in dev.output
    assert dev.output.strip() == f"jobbers_dev: port {port} on 127.0.0.1 is already in use; pass --port or set MANAGER_PORT"
