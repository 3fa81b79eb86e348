"""REST API benchmark: single submit, bulk submit and a mixed load against one manager.

    python benchmarks/manager.py [--seconds 5] [--connections 16] [--workers N] [--otel] [--only mixed]

Starts its own redis-server and one `jobbers_manager` (with ``MANAGER_WORKERS=N`` uvicorn worker
processes when ``--workers`` is given; with telemetry on, exporting nowhere, under ``--otel``).
Three phases:

- ``single``: ``POST /tasks``, one task per request;
- ``bulk``: ``POST /tasks/bulk``, ``--bulk-size`` tasks per request;
- ``mixed``: what a busy deployment sends: of every 10 requests, 4 submit a task, 4 read a task's
  status (``GET /task-status/{id}``, ids of tasks submitted beforehand) and 2 list a page of 50
  (``GET /tasks?status=submitted&limit=50``), with latency percentiles.

Load comes from `wrk` when installed (Debian package `wrk`; it costs the server least), else
from httpx in this process (which then measures the client as much as the server, and reports
no percentiles for the single/bulk phases). Prints figures; never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobbers.state.connection import connect  # noqa: E402
from jobbers.state.store import TaskStore  # noqa: E402
from tests.redis_server import RedisServer, find_redis_servers, free_port  # noqa: E402

SINGLE = {"name": "noop", "version": 1, "queue": "default", "params": {}}
MIXED_LIST = "/tasks?status=submitted&limit=50"
#: Tasks submitted before the mixed phase, whose status it reads.
MIXED_KNOWN_TASKS = 2000


@dataclass
class Load:
    """What one phase sustained: requests/s and, when measured, latency percentiles (ms)."""

    rate: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0

    def latency(self) -> str:
        if self.p50_ms is None or self.p99_ms is None:
            return ""
        return f"p50 {self.p50_ms:,.1f} ms, p99 {self.p99_ms:,.1f} ms"


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse_wrk(out: str) -> Load:
    """Requests/s, the 50% and 99% latencies and the non-2xx/socket error count of wrk's output."""
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s|m))$", out, re.MULTILINE))
    latency = {k: _ms(*re.fullmatch(r"([\d.]+)(us|ms|s|m)", v).groups()) for k, v in percentiles.items()}  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Load(rate, latency.get("50"), latency.get("99"), errors)


def run_wrk(url: str, script: str, seconds: int, connections: int, tmp: Path) -> Load:
    path = tmp / f"load-{time.monotonic_ns()}.lua"
    path.write_text(script)
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(path), url],
        capture_output=True, text=True, check=True,
    ).stdout
    return parse_wrk(out)


def post_script(body: dict[str, object]) -> str:
    return (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [[{json.dumps(body)}]]\n"
    )


def mixed_script(task_ids: list[str]) -> str:
    """A wrk script cycling 4 submits, 4 status reads and 2 listings out of every 10 requests."""
    ids = ",".join(f'"{i}"' for i in task_ids)
    body = json.dumps(SINGLE)
    return f"""
local ids = {{{ids}}}
local submit_body = [[{body}]]
local n = 0
function request()
  n = n + 1
  local k = n % 10
  if k < 4 then
    return wrk.format("POST", "/tasks", {{["Content-Type"] = "application/json"}}, submit_body)
  elseif k < 8 then
    return wrk.format("GET", "/task-status/" .. ids[math.random(#ids)])
  else
    return wrk.format("GET", "{MIXED_LIST}")
  end
end
"""


async def httpx_load(base: str, pick: object, seconds: float, connections: int) -> Load:
    """Closed-loop load from httpx: ``pick(i)`` gives the i-th request's (method, path, body)."""
    done = 0
    errors = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            method, path, body = pick(done)  # type: ignore[operator]
            started = time.perf_counter()
            r = await client.request(method, base + path, json=body)
            latencies.append(time.perf_counter() - started)
            errors += r.status_code >= 400
            done += 1

    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        start = time.perf_counter()
        await asyncio.gather(*(one(client) for _ in range(connections)))
        rate = done / (time.perf_counter() - start)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000 if latencies else None
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else None
    return Load(rate, p50, p99, errors)


def start_manager(
    server: RedisServer, tmp: Path, workers: int | None, otel: bool
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "REDIS_URL": server.url, "SQL_PATH": f"sqlite+aiosqlite:///{tmp / 'b.db'}",
           "MANAGER_PORT": str(port), "MANAGER_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING",
           "OTEL_SDK_DISABLED": "true", "PYTHONPATH": str(ROOT)}
    if otel:
        # Telemetry on, as in production, exporting to a local port where nothing listens.
        env.pop("OTEL_SDK_DISABLED")
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    if workers is not None:
        env["MANAGER_WORKERS"] = str(workers)
    manager = subprocess.Popen(
        [str(Path(sys.executable).parent / "jobbers_manager"), "benchmarks.bench_tasks"], env=env
    )
    return manager, f"http://127.0.0.1:{port}"


async def wait_ready(base: str) -> None:
    async with httpx.AsyncClient() as c:
        for _ in range(300):
            try:
                if (await c.get(f"{base}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the manager did not become ready")


async def main(args: argparse.Namespace) -> None:
    server = RedisServer(find_redis_servers().get("system") or next(iter(find_redis_servers().values())))
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="jobbers-bench-"))
    manager, base = start_manager(server, tmp, args.workers, args.otel)
    store = TaskStore(connect(server.url))
    use_wrk = shutil.which("wrk") is not None and not args.httpx
    phases = args.only or ["single", "bulk", "mixed"]
    results: dict[str, Load] = {}
    try:
        await wait_ready(base)
        bulk_body = {"tasks": [SINGLE] * args.bulk_size}
        if "single" in phases:
            results["single"] = (
                run_wrk(f"{base}/tasks", post_script(SINGLE), args.seconds, args.connections, tmp)
                if use_wrk
                else await httpx_load(base, lambda _i: ("POST", "/tasks", SINGLE), args.seconds, args.connections)
            )
        if "bulk" in phases:
            load = (
                run_wrk(f"{base}/tasks/bulk", post_script(bulk_body), args.seconds, 4, tmp)
                if use_wrk
                else await httpx_load(base, lambda _i: ("POST", "/tasks/bulk", bulk_body), args.seconds, 4)
            )
            results["bulk"] = load
        if "mixed" in phases:
            async with httpx.AsyncClient(timeout=60) as c:
                r = await c.post(f"{base}/tasks/bulk", json={"tasks": [SINGLE] * MIXED_KNOWN_TASKS})
                r.raise_for_status()
                known = [t["id"] for t in r.json()["tasks"]]

            def pick(i: int) -> tuple[str, str, object]:
                k = i % 10
                if k < 4:
                    return "POST", "/tasks", SINGLE
                if k < 8:
                    return "GET", f"/task-status/{random.choice(known)}", None
                return "GET", MIXED_LIST, None

            results["mixed"] = (
                run_wrk(base, mixed_script(known), args.seconds, args.connections, tmp)
                if use_wrk
                else await httpx_load(base, pick, args.seconds, args.connections)
            )
        stored = await store.queue_depth("default")
    finally:
        manager.terminate()
        manager.wait(30)
        await store.close()
        server.stop()
    workers = f"MANAGER_WORKERS={args.workers}" if args.workers else "one manager process"
    workers += ", telemetry on" if args.otel else ""
    print(f"{workers} (uvicorn), load from {'wrk' if use_wrk else 'httpx'}, {args.connections} connections, "
          f"{args.seconds} s per phase; {stored:,} tasks stored")
    if "single" in results:
        r = results["single"]
        print(f"POST /tasks, one task per request      {r.rate:>10,.0f} tasks/s   (budget >= 3,000/s)  {r.latency()}")
    if "bulk" in results:
        r = results["bulk"]
        print(f"POST /tasks/bulk, {args.bulk_size} per request  {r.rate * args.bulk_size:>10,.0f} tasks/s   "
              "(budget >= 30,000/s)")
    if "mixed" in results:
        r = results["mixed"]
        print(f"mixed 4 submit/4 status/2 list          {r.rate:>10,.0f} req/s     {r.latency()}"
              f"{f'  ({r.errors} errors)' if r.errors else ''}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--bulk-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=None, help="MANAGER_WORKERS for the manager")
    parser.add_argument("--only", action="append", choices=["single", "bulk", "mixed"], help="repeatable")
    parser.add_argument("--otel", action="store_true", help="run the manager with OpenTelemetry on")
    parser.add_argument("--httpx", action="store_true", help="generate load with httpx even if wrk exists")
    asyncio.run(main(parser.parse_args()))
