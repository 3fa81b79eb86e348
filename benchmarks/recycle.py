"""Recycling benchmark: the default WORKER_TTL=50 under a restart loop, and forked by one parent
(WORKER_RECYCLE=fork), versus WORKER_TTL=0.

    python benchmarks/recycle.py [--tasks 1000] [--ms 10] [--ttl 50] [--collector refused|hung|off]

Starts its own redis-server and SQLite database, queues ``--tasks`` tasks that each sleep ``--ms``
milliseconds, and runs the real ``jobbers_worker`` under a supervisor loop that starts the next
process when the previous one has exited (what systemd's ``Restart=always`` or Docker's restart
policy do), with every other setting at its default: 5 slots, telemetry on with the default
exporter, and no collector to export to (``--collector refused``: nothing listens on the OTLP
port; ``hung``: a socket accepts connections and never answers; ``off``: ``OTEL_SDK_DISABLED``).
Then the same tasks through one ``jobbers_worker --recycle fork`` (``WORKER_RECYCLE=fork``: a
parent that loaded everything forks a fresh worker for each ``WORKER_TTL`` tasks), and with
``WORKER_TTL=0``: one process each, stopped with SIGTERM once the tasks are done.

Prints, per run: tasks/s (from the first worker being ready to the last task completed, so the
TTL=0 figure is the steady rate and the TTL=50 one pays for every restart after the first),
process starts (worker lifetimes, in fork mode), start -> ready to claim (spawn to the worker's
"started" log line, which it writes just before its first claim; in fork mode, from a lifetime's
"reached WORKER_TTL" line to the next lifetime's "started"), exit time (from the "reached
WORKER_TTL" line, or from SIGTERM, to the process having exited), worker CPU per task, and the
TTL=0 worker's idle RSS.
Also the time of ``import jobbers.cli``, and with ``--rss`` the idle RSS of a worker whose
OTLP exporter is loaded (gRPC, the default, and http/protobuf; a collector that accepts
connections and never answers stands in for a real one). It measures; it never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobbers.config_store import ConfigStore  # noqa: E402
from jobbers.models.task import TaskStatus  # noqa: E402
from jobbers.state.connection import connect  # noqa: E402
from jobbers.state.store import NewTask, TaskStore  # noqa: E402
from tests.helpers import count_by_status  # noqa: E402
from tests.redis_server import RedisServer, find_redis_servers, free_port  # noqa: E402

WORKER = str(Path(sys.executable).parent / "jobbers_worker")


@dataclass
class Run:
    ttl: int
    fork: bool = False
    elapsed: float = 0.0  # from the first worker's "started" line to the last task completed
    wall: float = 0.0  # from the first spawn
    starts: int = 0
    ready: list[float] = field(default_factory=list)
    exits: list[float] = field(default_factory=list)
    cpu: float = 0.0
    idle_rss_mb: float = float("nan")
    completed: int = 0


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def supervise(run: Run, env: dict[str, str], store: TaskStore, total: int) -> None:
    """Restart ``jobbers_worker`` each time it exits, until ``total`` tasks are completed."""
    done = asyncio.Event()
    finished_at = 0.0

    async def watch() -> None:
        nonlocal finished_at
        while await count_by_status(store, TaskStatus.COMPLETED) < total:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        finished_at = time.perf_counter()
        done.set()

    cpu_before = children_cpu()
    started = time.perf_counter()
    watcher = asyncio.create_task(watch())
    while not done.is_set():
        spawned = time.perf_counter()
        recycle = ["--recycle", "fork"] if run.fork else []
        proc = await asyncio.create_subprocess_exec(
            WORKER, *recycle, "benchmarks.bench_tasks", env=env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        marks: dict[str, float] = {}

        async def read_log(
            proc: asyncio.subprocess.Process = proc, marks: dict[str, float] = marks, spawned: float = spawned
        ) -> None:
            assert proc.stderr is not None
            async for line in proc.stderr:
                if b" started, role=" in line:
                    run.starts += 1
                    if "ready" not in marks:
                        marks["ready"] = time.perf_counter()
                        run.ready.append(marks["ready"] - spawned)
                    elif "ttl" in marks:  # a forked lifetime after the previous one's last claim
                        run.ready.append(time.perf_counter() - marks.pop("ttl"))
                elif b"reached WORKER_TTL" in line:
                    marks["ttl"] = time.perf_counter()

        reader = asyncio.create_task(read_log())
        exited = asyncio.create_task(proc.wait())
        await asyncio.wait([exited, asyncio.create_task(done.wait())], return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():
            # All done while this process runs: a TTL worker about to exit gets a moment to say
            # so; else (WORKER_TTL=0, or a process that got no work) it is stopped with SIGTERM.
            await asyncio.wait([exited], timeout=0.3)
            if ("ttl" not in marks or run.fork) and not exited.done():
                if run.ttl == 0:
                    await asyncio.sleep(1.0)  # idle for a second, then read its memory
                    run.idle_rss_mb = rss_mb(proc.pid)
                marks["ttl"] = time.perf_counter()
                proc.send_signal(signal.SIGTERM)
        await exited
        ended = time.perf_counter()
        await reader
        if "ttl" in marks:
            run.exits.append(ended - marks["ttl"])
    await watcher
    run.wall = finished_at - started
    run.elapsed = finished_at - (started + run.ready[0])
    run.cpu = children_cpu() - cpu_before
    run.completed = await count_by_status(store, TaskStatus.COMPLETED)


async def exporter_rss(env: dict[str, str], redis_url: str, protocol: str, listening: bool) -> float:
    """RSS of a WORKER_TTL=0 worker idle after 100 tasks and a few metric exports over ``protocol``
    to a collector that refuses connections, or (``listening``) accepts them and never answers, so
    the OTLP exporter is loaded as it is with a collector."""
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    if listening:
        sink.listen(1024)
    endpoint = f"http://127.0.0.1:{sink.getsockname()[1]}"
    worker_env = {**env, "WORKER_TTL": "0", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                  "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_METRIC_EXPORT_INTERVAL": "500"}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        WORKER, "benchmarks.bench_tasks", env=worker_env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    store = TaskStore(connect(redis_url))  # a new one: FLUSHALL removes what an old one registered
    try:
        await store.redis.flushall()
        await store.submit_many([NewTask(name="sleep_ms", params={"ms": 1}) for _ in range(100)])
        while await count_by_status(store, TaskStatus.COMPLETED) < 100:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(3.0)  # idle, through several exports
        return rss_mb(proc.pid)
    finally:
        await store.close()
        proc.terminate()
        await proc.wait()
        sink.close()


def import_seconds(samples: int = 5) -> float:
    """Median time a fresh interpreter takes to import the worker's entry module (timed inside it)."""
    code = "import time; t = time.perf_counter(); import jobbers.cli; print(time.perf_counter() - t)"
    times = []
    for _ in range(samples):
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True
        )
        times.append(float(out.stdout))
    return statistics.median(times)


def fmt_ms(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values) * 1000:.0f} ms (max {max(values) * 1000:.0f})"


async def measure(args: argparse.Namespace, server: RedisServer, env: dict[str, str]) -> None:
    runs = []
    modes = {"exit": (args.ttl, False), "fork": (args.ttl, True), "ttl0": (0, False)}
    for ttl, fork in (modes[mode] for mode in args.modes.split(",")):
        # A store per run: one that saw the data FLUSHALL removed would not register its queue again.
        store = TaskStore(connect(server.url))
        try:
            await store.redis.flushall()
            tasks = [NewTask(name="sleep_ms", params={"ms": args.ms}) for _ in range(args.tasks)]
            await store.submit_many(tasks)
            run = Run(ttl, fork)
            await supervise(run, {**env, "WORKER_TTL": str(ttl)}, store, args.tasks)
            runs.append(run)
        finally:
            await store.close()
    for run in runs:
        rate = args.tasks / run.elapsed
        mode = "fork" if run.fork else "exit"
        print(
            f"WORKER_TTL={run.ttl:<3} {mode} {rate:7.1f} tasks/s  {run.elapsed:6.2f} s "
            f"({run.wall:.2f} s with the first start)  starts {run.starts:3d}  "
            f"ready {fmt_ms(run.ready)}  exit {fmt_ms(run.exits)}  "
            f"CPU/task {run.cpu / args.tasks * 1000:.1f} ms  completed {run.completed}"
        )
    steady = next((run for run in runs if run.ttl == 0), None)
    for run in runs:
        if steady is not None and run.ttl:
            mode = "fork" if run.fork else "exit"
            print(
                f"TTL={run.ttl} {mode} rate / TTL=0 rate: {steady.elapsed / run.elapsed:.0%} (target >= 70%)"
            )
    if steady is not None:
        print(f"TTL=0 worker idle RSS after the run: {steady.idle_rss_mb:.0f} MB (budget 80 MB)")
    if args.rss:
        for protocol, listening in (("grpc", False), ("grpc", True), ("http/protobuf", True)):
            rss = await exporter_rss(env, server.url, protocol, listening)
            collector = "a collector accepting connections" if listening else "no collector"
            print(f"idle worker RSS, {protocol} exporter, {collector}: {rss:.0f} MB (budget 80 MB)")


async def main(args: argparse.Namespace) -> None:
    # Byte-compile what the workers import, as installing the wheel does (with PYTHONDONTWRITEBYTECODE
    # set, an editable install would otherwise compile every jobbers module at every start).
    compile_all = [sys.executable, "-m", "compileall", "-q", str(ROOT / "jobbers"), str(ROOT / "benchmarks")]
    subprocess.run(compile_all, check=True)  # noqa: ASYNC221
    server = RedisServer(find_redis_servers().get("system") or next(iter(find_redis_servers().values())))
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="jobbers-recycle-"))
    sql = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    config = ConfigStore(sql)
    await config.migrate()
    await config.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "WORKER_", "LOG_"))}
    env.update({"REDIS_URL": server.url, "SQL_PATH": sql, "PYTHONPATH": str(ROOT)})
    hung: socket.socket | None = None
    if args.collector == "off":
        env["OTEL_SDK_DISABLED"] = "true"
        where = "telemetry off (OTEL_SDK_DISABLED=true)"
    elif args.collector == "hung":
        hung = socket.socket()
        hung.bind(("127.0.0.1", 0))
        hung.listen(1024)  # never accepted: connections complete, requests go unanswered
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{hung.getsockname()[1]}"
        where = f"telemetry on, collector {env['OTEL_EXPORTER_OTLP_ENDPOINT']} accepts and never answers"
    else:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
        where = f"telemetry on, collector {env['OTEL_EXPORTER_OTLP_ENDPOINT']} refuses connections"
    load = os.getloadavg()
    print(
        f"python {sys.version.split()[0]}; {args.tasks} tasks of {args.ms:g} ms; 5 slots; {where}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"import jobbers.cli (fresh interpreter, median of 5): {import_seconds() * 1000:.0f} ms")
    try:
        await measure(args, server, env)
    finally:
        server.stop()
        if hung is not None:
            hung.close()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--ms", type=float, default=10.0, help="how long each task sleeps")
    parser.add_argument("--ttl", type=int, default=50)
    parser.add_argument("--modes", default="exit,fork,ttl0", help="runs: exit (restart loop), fork, ttl0")
    parser.add_argument("--collector", choices=("refused", "hung", "off"), default="refused")
    parser.add_argument(
        "--rss", action="store_true", help="also the idle RSS with each OTLP exporter loaded (~15 s more)"
    )
    asyncio.run(main(parser.parse_args()))
