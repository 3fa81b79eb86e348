"""REST API benchmark: single submit, bulk submit and a mixed load against one real manager.

    python benchmarks/manager.py [--seconds 5] [--connections 16] [--workers 1 --workers 2]
                                 [--otel] [--only single --only bulk --only mixed]

Starts its own redis-server and, for each ``--workers N`` (default: 1, then 2), a `jobbers_manager`
with ``MANAGER_WORKERS=N`` (telemetry on, exporting nowhere, under ``--otel``). Phases:

- ``single``: ``POST /tasks``, one task per request;
- ``bulk``: ``POST /tasks/bulk``, ``--bulk-size`` tasks per request (4 connections);
- ``mixed``: what a busy deployment sends: of every 10 requests, 4 submit a task, 4 read a task's
  status (``GET /task-status/{id}``, ids of tasks submitted beforehand) and 2 list a page of 50
  (``GET /tasks?status=submitted&limit=50``).

Load comes from a separate process (``--load`` runs it) that keeps ``--connections`` HTTP/1.1
keep-alive connections busy, each sending pre-built request bytes over a raw asyncio protocol (on
uvloop) and reading the answer before sending the next: a few microseconds of client CPU per
request, so the rate measures the server. The machine's cores are shared by the load generator,
Redis and the manager, so beside requests/s and tasks/s it prints the manager's CPU per request
(all its processes, from ``/proc/<pid>/stat`` over the measured window) and the implied capacity
of one manager core (1e6 / CPU µs per request), the figure comparable across machines and loads.
Prints figures; never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.redis_server import RedisServer, find_redis_servers, free_port  # noqa: E402

SINGLE = {"name": "noop", "version": 1, "queue": "default", "params": {}}
MIXED_LIST = "/tasks?status=submitted&limit=50"
#: Tasks submitted before the mixed phase, whose status it reads.
MIXED_KNOWN_TASKS = 2000
#: Load before the measured window, so that connections are open and caches warm.
WARMUP_SECONDS = 1.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the load generator (its own process) -------------------------------------------------------


def request_bytes(method: str, path: str, body: object = None) -> bytes:
    """One keep-alive HTTP/1.1 request, ready to write."""
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
    if body is None:
        return (head + "\r\n").encode()
    data = json.dumps(body).encode()
    head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    return head.encode() + data


class LoadConnection(asyncio.Protocol):
    """One connection sending requests in a closed loop: the next goes out when an answer is in."""

    def __init__(self, requests: list[bytes], offset: int, stats: dict[str, object]) -> None:
        self.requests = requests
        self.index = offset
        self.stats = stats
        self.buffer = b""
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send_next()

    def send_next(self) -> None:
        if self.stats["stop"]:
            assert self.transport is not None
            self.transport.close()
            return
        request = self.requests[self.index % len(self.requests)]
        self.index += 1
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            status = int(head[9:12])
            self.buffer = self.buffer[end + 4 + length :]
            if self.stats["measuring"]:
                self.stats["done"] += 1  # type: ignore[operator]
                self.stats["errors"] += status >= 400  # type: ignore[operator]
                self.stats["latencies"].append(time.perf_counter() - self.sent_at)  # type: ignore[attr-defined]
            self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a ``MANAGER_WORKERS`` > 1 manager's worker processes)."""
    tree = [pid]
    for p in tree:
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                tree += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of ``pids`` so far (seconds)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


async def generate_load(spec: dict[str, object]) -> dict[str, object]:
    """Drive ``spec``'s requests for ``spec["seconds"]`` after a warm-up; the counts and CPU figures."""
    loop = asyncio.get_running_loop()
    requests = [r.encode("latin-1") for r in spec["requests"]]  # type: ignore[attr-defined]
    stats: dict[str, object] = {"done": 0, "errors": 0, "latencies": [], "measuring": False, "stop": False}
    host, port = spec["host"], spec["port"]
    connections = [
        (await loop.create_connection(lambda i=i: LoadConnection(requests, i * 7, stats), host, port))[1]  # type: ignore[misc]
        for i in range(int(spec["connections"]))  # type: ignore[call-overload]
    ]
    await asyncio.sleep(WARMUP_SECONDS)
    pids = {name: process_tree(int(pid)) for name, pid in spec["pids"].items()}  # type: ignore[attr-defined]
    cpu_before = {name: cpu_seconds(p) for name, p in pids.items()}
    own_before = time.process_time()
    stats["measuring"] = True
    started = time.perf_counter()
    await asyncio.sleep(float(spec["seconds"]))  # type: ignore[arg-type]
    stats["measuring"] = False
    elapsed = time.perf_counter() - started
    cpu = {name: cpu_seconds(p) - cpu_before[name] for name, p in pids.items()}
    cpu["load"] = time.process_time() - own_before
    stats["stop"] = True
    await asyncio.wait([c.closed for c in connections], timeout=30)
    latencies = sorted(stats["latencies"])  # type: ignore[type-var]
    return {
        "done": stats["done"],
        "errors": stats["errors"],
        "elapsed": elapsed,
        "cpu": cpu,
        "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else None,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else None,
    }


def load_main() -> None:
    """``--load``: read a spec as JSON on stdin, print the result as JSON."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(generate_load(json.load(sys.stdin)))))


# --- the driver ---------------------------------------------------------------------------------


def start_manager(
    server: RedisServer, tmp: Path, workers: int, otel: bool
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "REDIS_URL": server.url, "SQL_PATH": f"sqlite+aiosqlite:///{tmp / f'b{port}.db'}",
           "MANAGER_PORT": str(port), "MANAGER_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING",
           "OTEL_SDK_DISABLED": "true", "PYTHONPATH": str(ROOT), "MANAGER_WORKERS": str(workers)}
    if otel:
        # Telemetry on, as in production, exporting to a local port where nothing listens.
        env.pop("OTEL_SDK_DISABLED")
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    manager = subprocess.Popen(
        [str(Path(sys.executable).parent / "jobbers_manager"), "benchmarks.bench_tasks"], env=env
    )
    return manager, port


def call(port: int, method: str, path: str, body: object = None, timeout: float = 60) -> tuple[int, bytes]:
    """One request on a fresh connection (set-up and checks, not load)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body)
        conn.request(method, path, data, {"Content-Type": "application/json"} if data else {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def wait_ready(port: int) -> None:
    for _ in range(300):
        try:
            if call(port, "GET", "/readyz", timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the manager did not become ready")


def run_load(port: int, requests: list[bytes], connections: int, seconds: float,
             pids: dict[str, int]) -> dict[str, object]:
    spec = {"host": "127.0.0.1", "port": port, "connections": connections, "seconds": seconds,
            "requests": [r.decode("latin-1") for r in requests], "pids": pids}
    out = subprocess.run([sys.executable, __file__, "--load"], input=json.dumps(spec), text=True,
                         capture_output=True, timeout=seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def report(label: str, result: dict[str, object], tasks_per_request: int, budget: str) -> None:
    done, elapsed = int(result["done"]), float(result["elapsed"])  # type: ignore[arg-type]
    cpu = result["cpu"]
    rate = done / elapsed
    manager_us = cpu["manager"] / done * 1e6 if done else float("nan")  # type: ignore[index]
    redis_us = cpu["redis"] / done * 1e6 if done else float("nan")  # type: ignore[index]
    load_us = cpu["load"] / done * 1e6 if done else float("nan")  # type: ignore[index]
    tasks = f"{rate * tasks_per_request:>9,.0f} tasks/s" if tasks_per_request else " " * 16
    capacity = 1e6 / manager_us * max(tasks_per_request, 1)
    latency = f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms" if result["p50_ms"] else ""
    errors = f"  {result['errors']} ERRORS" if result["errors"] else ""
    print(f"  {label:<34}{rate:>8,.0f} req/s {tasks}   manager {manager_us:>7,.0f} us/req "
          f"-> one core {capacity:>8,.0f} {'tasks' if tasks_per_request else 'req'}/s {budget}")
    print(f"  {'':<34}{latency}; Redis {redis_us:,.0f} us/req, load generator {load_us:,.0f} us/req{errors}")


def bench_manager(server: RedisServer, tmp: Path, workers: int, args: argparse.Namespace) -> None:
    manager, port = start_manager(server, tmp, workers, args.otel)
    try:
        wait_ready(port)
        time.sleep(0.5)  # every worker process started
        pids = {"manager": manager.pid, "redis": server.proc.pid}  # type: ignore[union-attr]
        phases = args.only or ["single", "bulk", "mixed"]
        print(f"MANAGER_WORKERS={workers}{', telemetry on' if args.otel else ''}: "
              f"{args.seconds} s per phase after {WARMUP_SECONDS:.0f} s of warm-up")
        if "single" in phases:
            single = [request_bytes("POST", "/tasks", SINGLE)]
            r = run_load(port, single, args.connections, args.seconds, pids)
            report(f"POST /tasks ({args.connections} conns)", r, 1, "(budget >= 3,000 tasks/s)")
        if "bulk" in phases:
            body = {"tasks": [SINGLE] * args.bulk_size}
            r = run_load(port, [request_bytes("POST", "/tasks/bulk", body)], 4, args.seconds, pids)
            report(f"POST /tasks/bulk ({args.bulk_size}/req, 4 conns)", r, args.bulk_size,
                   "(budget >= 30,000 tasks/s)")
        if "mixed" in phases:
            status, answer = call(port, "POST", "/tasks/bulk", {"tasks": [SINGLE] * MIXED_KNOWN_TASKS})
            known = [t["id"] for t in json.loads(answer)["tasks"]] if status < 300 else ["0" * 26]
            rng = random.Random(1)
            cycle: list[bytes] = []
            for _ in range(50):
                cycle += [request_bytes("POST", "/tasks", SINGLE)] * 4
                cycle += [request_bytes("GET", f"/task-status/{rng.choice(known)}") for _ in range(4)]
                cycle += [request_bytes("GET", MIXED_LIST)] * 2
            r = run_load(port, cycle, args.connections, args.seconds, pids)
            report("mixed 4 submit/4 status/2 list", r, 0, "")
    except Exception as exc:
        print(f"  MANAGER_WORKERS={workers}: {type(exc).__name__}: {exc}")
    finally:
        manager.terminate()
        try:
            manager.wait(30)
        except subprocess.TimeoutExpired:
            manager.kill()


def main(args: argparse.Namespace) -> None:
    servers = find_redis_servers()
    server = RedisServer(servers.get("system") or next(iter(servers.values())))
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="jobbers-bench-"))
    try:
        for workers in args.workers or [1, 2]:
            bench_manager(server, tmp, workers, args)
    finally:
        server.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["--load"]:
        load_main()
        sys.exit(0)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--bulk-size", type=int, default=1000)
    parser.add_argument(
        "--workers", type=int, action="append", help="MANAGER_WORKERS (repeatable; default 1 and 2)"
    )
    parser.add_argument("--only", action="append", choices=["single", "bulk", "mixed"], help="repeatable")
    parser.add_argument("--otel", action="store_true", help="run the manager with OpenTelemetry on")
    main(parser.parse_args())
