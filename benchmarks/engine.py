"""Engine benchmark: prints submit rates, processing rate, submit->start latency and memory.

    python benchmarks/engine.py [--tasks 50000] [--concurrency 500] [--workers 1]

Starts its own redis-server on a free port and real `jobbers_worker` processes (no-op tasks; one
unless --workers says more; the latency figures are always of one idle worker).
It measures; it never fails. The budgets printed beside the figures are listed in README.md
(Benchmarks).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobbers.client import JobbersClient  # noqa: E402
from jobbers.config_store import ConfigStore  # noqa: E402
from jobbers.models.task import TaskStatus  # noqa: E402
from jobbers.state.connection import connect  # noqa: E402
from jobbers.state.store import NewTask, TaskStore  # noqa: E402
from tests.helpers import count_by_status  # noqa: E402
from tests.redis_server import RedisServer, find_redis_servers  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (from /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def redis_cpu_seconds(store: TaskStore) -> float:
    info = await store.redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def script_time(store: TaskStore) -> tuple[float, int]:
    """Redis's own count of the time spent in script calls (EVALSHA and FCALL), in us, and the calls."""
    stats = await store.redis.info("commandstats")
    found = [stats.get(f"cmdstat_{command}", {}) for command in ("evalsha", "fcall")]
    return sum(float(f.get("usec", 0)) for f in found), sum(int(f.get("calls", 0)) for f in found)


async def wait_count(store: TaskStore, status: TaskStatus, target: int, timeout: float = 300) -> float:
    start = time.perf_counter()
    while await count_by_status(store, status) < target:
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"only {await count_by_status(store, status)} of {target} {status}")
        await asyncio.sleep(0.005)
    return time.perf_counter() - start


async def rate(call: Callable[[], Awaitable[object]], n: int, in_flight: int) -> float:
    """Calls per second of ``call`` made ``n`` times, ``in_flight`` at once."""
    t0 = time.perf_counter()
    if in_flight == 1:
        for _ in range(n):
            await call()
    else:
        gate = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with gate:
                await call()

        await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - t0)


async def main(args: argparse.Namespace) -> None:
    server = RedisServer(find_redis_servers().get("system") or next(iter(find_redis_servers().values())))
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="jobbers-bench-"))
    sql = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    config = ConfigStore(sql)
    await config.migrate()
    store = TaskStore(connect(server.url))
    client = JobbersClient(store, config)
    env = {**os.environ, "REDIS_URL": server.url, "SQL_PATH": sql, "WORKER_TTL": "0", "LOG_LEVEL": "WARNING",
           "WORKER_CONCURRENT_TASKS": str(args.concurrency), "PYTHONPATH": str(ROOT)}
    worker_bin = str(Path(sys.executable).parent / "jobbers_worker")
    print(f"redis-server {server.binary}; python {sys.version.split()[0]}; "
          f"{args.tasks} no-op tasks; {args.workers} worker(s), concurrency {args.concurrency}")
    try:
        # 0. References in the same run: a raw redis-py client's single-command rate (SET), one at a
        # time and 32 in flight, to set the Python submit rates below against.
        raw_client = connect(server.url)
        raw_single = await rate(lambda: raw_client.set("bench:ref", "1"), 5_000, 1)
        raw_32 = await rate(lambda: raw_client.set("bench:ref", "1"), 5_000, 32)
        await raw_client.delete("bench:ref")
        await raw_client.aclose()
        # 1. Submit through the Python API, one at a time (1 round trip each), then 32 in flight
        # (concurrent submits share script calls).
        n_single = min(args.tasks, 10_000)
        client_n = max(n_single // 4, 1)
        client_single = await rate(lambda: client.submit("noop", {}), client_n, 1)
        client_32 = await rate(lambda: client.submit("noop", {}), client_n, 32)
        n_single -= 2 * client_n
        t0 = time.perf_counter()
        for _ in range(n_single):
            await store.submit(NewTask(name="noop"))
        single = n_single / (time.perf_counter() - t0)
        n_single += 2 * client_n
        info = await store.redis.info("memory")
        used_before = int(info["used_memory"])
        # 2. Submit in bulk (pipelined script calls of 500 tasks).
        n_bulk = args.tasks - n_single
        batch = [NewTask(name="noop") for _ in range(n_bulk)]
        redis_cpu = await redis_cpu_seconds(store)
        t0 = time.perf_counter()
        await store.submit_many(batch)
        bulk = n_bulk / (time.perf_counter() - t0)
        bulk_redis_us = (await redis_cpu_seconds(store) - redis_cpu) / max(n_bulk, 1) * 1e6
        used_after = int((await store.redis.info("memory"))["used_memory"])
        per_task = (used_after - used_before) / max(n_bulk, 1)
        # 3. The worker process(es) drain the queue: claim with lease, run, store result.
        redis_cpu = await redis_cpu_seconds(store)
        command = [worker_bin, "benchmarks.bench_tasks"]
        workers = [subprocess.Popen(command, env=env) for _ in range(args.workers)]
        elapsed = await wait_count(store, TaskStatus.COMPLETED, args.tasks)
        processing = args.tasks / elapsed
        # CPU per task does not depend on what else the machine runs, unlike the rates above.
        worker_us = sum(cpu_seconds(w.pid) for w in workers) / args.tasks * 1e6  # with start-up
        processing_redis_us = (await redis_cpu_seconds(store) - redis_cpu) / args.tasks * 1e6
        for extra in workers[1:]:  # the latency figures below are of one idle worker
            extra.terminate()
            extra.wait(30)
        worker = workers[0]
        busy_rss = rss_mb(worker.pid)
        # 4. Submit -> start latency on an idle worker.
        await asyncio.sleep(1.0)
        idle_rss = rss_mb(worker.pid)
        latencies: list[float] = []
        redis_side: list[float] = []  # submit script -> claim script, by Redis's clock (1 ms steps)
        for _ in range(args.latency_samples):
            sub = await client.submit("latency_probe", {"sent": time.time()})
            await asyncio.sleep(0.01)  # the task measures its own start; don't compete for the CPU
            while True:
                task = await store.get_task(sub.id)
                if task is not None and task.status is TaskStatus.COMPLETED:
                    latencies.append(float(task.result) * 1000)
                    if task.started_at and task.submitted_at:
                        redis_side.append((task.started_at - task.submitted_at).total_seconds() * 1000)
                    break
                await asyncio.sleep(0.005)
        # 5. Submit -> result: the client's submit call until wait() returns the ended task (woken by
        # the transition's notification, not by polling).
        waited: list[float] = []
        lone_cpu, (lone_usec, lone_calls) = await redis_cpu_seconds(store), await script_time(store)
        for _ in range(args.latency_samples):
            t0 = time.perf_counter()
            sub = await client.submit("noop", {})
            await client.wait(sub.id, 5)
            waited.append((time.perf_counter() - t0) * 1000)
        lone_redis_us = (await redis_cpu_seconds(store) - lone_cpu) / args.latency_samples * 1e6
        usec, calls = await script_time(store)
        lone_script_us = (usec - lone_usec) / max(calls - lone_calls, 1)
        waited.sort()
        w50 = statistics.median(waited)
        w99 = waited[int(len(waited) * 0.99) - 1]
        latencies.sort()
        redis_side.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        r50 = statistics.median(redis_side)
        r99 = redis_side[int(len(redis_side) * 0.99) - 1]
        worker.terminate()
        worker.wait(30)
    finally:
        await client.waits.close()
        await store.close()
        await config.close()
        server.stop()

    rows = [
        ("reference: raw redis-py SET, one at a time", f"{raw_single:,.0f} /s", "-"),
        ("reference: raw redis-py SET, 32 in flight", f"{raw_32:,.0f} /s", "-"),
        ("submit, client.submit(), one at a time", f"{client_single:,.0f} tasks/s", ">= 5,000/s"),
        ("submit, client.submit(), 32 in flight", f"{client_32:,.0f} tasks/s", ">= 8,000/s"),
        ("submit, TaskStore.submit(), one at a time", f"{single:,.0f} tasks/s", "-"),
        ("submit, Python API, bulk", f"{bulk:,.0f} tasks/s", ">= 50,000/s"),
        ("Redis CPU per task, bulk submit", f"{bulk_redis_us:.1f} us", "-"),
        (f"processing, {args.workers} worker process(es)", f"{processing:,.0f} tasks/s", ">= 10,000/s"),
        ("Redis CPU per task, processing (claim + finish)", f"{processing_redis_us:.1f} us", "<= 20 us"),
        ("worker CPU per task (with its start-up)", f"{worker_us:.0f} us", "-"),
        ("submit -> start latency p50 (client call -> task runs)", f"{p50:.2f} ms", "<= 1 ms"),
        ("submit -> start latency p99 (client call -> task runs)", f"{p99:.2f} ms", "<= 5 ms"),
        ("submit -> result p50 (client call -> wait() returns)", f"{w50:.2f} ms", "<= 1 ms"),
        ("submit -> result p99 (client call -> wait() returns)", f"{w99:.2f} ms", "<= 3 ms"),
        ("Redis CPU per lone task (submit, claim, finish, reads)", f"{lone_redis_us:.0f} us", "-"),
        ("Redis time per script call, lone tasks", f"{lone_script_us:.1f} us", "-"),
        ("stored -> claimed p50 / p99 (Redis clock, 1 ms steps)", f"{r50:.0f} ms / {r99:.0f} ms", "-"),
        ("worker RSS idle / after load", f"{idle_rss:.0f} MB / {busy_rss:.0f} MB", "<= 80 MB idle"),
        ("Redis memory per queued task", f"{per_task:,.0f} bytes", "<= 1 KB"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, budget in rows:
        print(f"{name:<{width}}  {value:>22}   (budget {budget})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--workers", type=int, default=1, help="worker processes that drain the queue")
    asyncio.run(main(parser.parse_args()))
