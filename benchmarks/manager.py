"""REST API benchmark: POST /tasks (single) and POST /tasks/bulk against one manager process.

    python benchmarks/manager.py [--seconds 5] [--connections 16]

Starts its own redis-server and one `jobbers_manager` (uvicorn) process. Load comes from `wrk`
when installed (Debian package `wrk`; it costs the server least), else from httpx in this
process (which then measures the client as much as the server). Prints figures; never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobbers.state.connection import connect  # noqa: E402
from jobbers.state.store import TaskStore  # noqa: E402
from tests.redis_server import RedisServer, find_redis_servers, free_port  # noqa: E402

SINGLE = {"name": "noop", "version": 1, "queue": "default", "params": {}}


def wrk_rate(url: str, body: dict[str, object], seconds: int, connections: int, tmp: Path) -> float:
    """Requests/s that wrk sustained for POST ``body`` to ``url``."""
    script = tmp / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [[{json.dumps(body)}]]\n"
    )
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(out)


async def httpx_rate(url: str, body: dict[str, object], seconds: float, connections: int) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            r = await client.post(url, json=body)
            r.raise_for_status()
            done += 1

    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        start = time.perf_counter()
        await asyncio.gather(*(one(client) for _ in range(connections)))
        return done / (time.perf_counter() - start)


async def main(args: argparse.Namespace) -> None:
    server = RedisServer(find_redis_servers().get("system") or next(iter(find_redis_servers().values())))
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="jobbers-bench-"))
    port = free_port()
    env = {**os.environ, "REDIS_URL": server.url, "SQL_PATH": f"sqlite+aiosqlite:///{tmp / 'b.db'}",
           "MANAGER_PORT": str(port), "MANAGER_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING",
           "OTEL_SDK_DISABLED": "true", "PYTHONPATH": str(ROOT)}
    manager = subprocess.Popen([str(Path(sys.executable).parent / "jobbers_manager"), "benchmarks.bench_tasks"],
                               env=env)
    base = f"http://127.0.0.1:{port}"
    store = TaskStore(connect(server.url))
    try:
        async with httpx.AsyncClient() as c:
            for _ in range(100):
                try:
                    if (await c.get(f"{base}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        bulk_body = {"tasks": [SINGLE] * args.bulk_size}
        use_wrk = shutil.which("wrk") is not None and not args.httpx
        tool = "wrk" if use_wrk else "httpx"
        if use_wrk:
            single = wrk_rate(f"{base}/tasks", SINGLE, args.seconds, args.connections, tmp)
            bulk = wrk_rate(f"{base}/tasks/bulk", bulk_body, args.seconds, 4, tmp) * args.bulk_size
        else:
            single = await httpx_rate(f"{base}/tasks", SINGLE, args.seconds, args.connections)
            bulk = await httpx_rate(f"{base}/tasks/bulk", bulk_body, args.seconds, 4) * args.bulk_size
        stored = await store.queue_depth("default")
    finally:
        manager.terminate()
        manager.wait(30)
        await store.close()
        server.stop()
    print(f"one manager process (uvicorn), load from {tool}, {args.connections} connections; "
          f"{stored:,} tasks stored")
    print(f"POST /tasks, one task per request      {single:>10,.0f} tasks/s   (budget >= 3,000/s)")
    print(f"POST /tasks/bulk, {args.bulk_size} per request      {bulk:>10,.0f} tasks/s   (budget >= 30,000/s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--bulk-size", type=int, default=1000)
    parser.add_argument("--httpx", action="store_true", help="generate load with httpx even if wrk exists")
    asyncio.run(main(parser.parse_args()))
