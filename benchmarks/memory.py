"""Idle worker memory: RSS of a real ``jobbers_worker`` with the default OTLP exporter (gRPC).

    python benchmarks/memory.py [--collector refused,hung,answering] [--protocol grpc]
                                [--recycle exit|fork] [--modules]

Starts its own redis-server and SQLite database and, per collector, one ``jobbers_worker
benchmarks.bench_tasks`` with every setting at its default but ``WORKER_TTL=0`` and
``OTEL_METRIC_EXPORT_INTERVAL=1000`` (the standard variable, in ms: the first export comes after
one second instead of sixty). The worker runs 100 tasks, then idles past three export attempts;
its RSS is printed at "started" (before any export) and after those exports. Collectors:

- ``refused``: nothing listens on the endpoint's port (the default ``localhost:4317`` on a
  machine without a collector is this case);
- ``hung``: a socket accepts connections and never answers (the exporter is loaded and retries);
- ``answering``: a real OTLP/gRPC metrics and traces service in this process that accepts every
  export (what a worker next to a collector holds).

With ``--recycle fork`` (``WORKER_RECYCLE=fork``, ``WORKER_TTL=1000``) it prints the RSS of the
parent and of its two children (the running worker and the next one, waiting), and the PSS of
the three together (their shared pages counted once). ``--protocol http/protobuf`` measures that
exporter instead (``answering`` then stands for
``hung``: there is no HTTP collector here). ``--modules`` also prints what importing the
worker's modules costs in a fresh interpreter, by top-level package. It measures; it never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobbers.config_store import ConfigStore  # noqa: E402
from jobbers.models.task import TaskStatus  # noqa: E402
from jobbers.state.connection import connect  # noqa: E402
from jobbers.state.store import NewTask, TaskStore  # noqa: E402
from tests.helpers import count_by_status  # noqa: E402
from tests.redis_server import RedisServer, find_redis_servers, free_port  # noqa: E402

WORKER = str(Path(sys.executable).parent / "jobbers_worker")
EXPORT_INTERVAL_MS = 1000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def describe(pid: int, fork: bool) -> str:
    """``73.5 MB`` (a plain worker), or the parent's, its children's and the group's figures."""
    if not fork:
        return f"{rss_mb(pid):5.1f} MB"
    kids = children(pid)
    rss = ", ".join(f"{rss_mb(kid):.1f}" for kid in kids)
    group = pss_mb(pid) + sum(pss_mb(kid) for kid in kids)
    return f"parent {rss_mb(pid):.1f} MB, children {rss} MB (PSS of the three {group:.1f} MB)"


def answering_collector() -> tuple[Any, int]:
    """An OTLP/gRPC server accepting metric and span exports (and discarding them)."""
    import grpc
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            return metrics_service_pb2.ExportMetricsServiceResponse()

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


async def worker_rss(env: dict[str, str], redis_url: str, fork: bool) -> tuple[str, str]:
    """Memory of a worker at its "started" line, and idle after 100 tasks and three exports."""
    recycle = ["--recycle", "fork"] if fork else []
    proc = await asyncio.create_subprocess_exec(
        WORKER, *recycle, "benchmarks.bench_tasks", env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    store = TaskStore(connect(redis_url))  # a new one: FLUSHALL removes what an old one registered
    try:
        assert proc.stderr is not None
        async for line in proc.stderr:
            if b" started, role=" in line:
                break
        await asyncio.sleep(0.5 if fork else 0)  # the next child, forked at the first's start, waits
        at_start = describe(proc.pid, fork)
        drain = asyncio.create_task(proc.stderr.read())
        await store.redis.flushall()
        await store.submit_many([NewTask(name="sleep_ms", params={"ms": 1}) for _ in range(100)])
        while await count_by_status(store, TaskStatus.COMPLETED) < 100:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(3.5 * EXPORT_INTERVAL_MS / 1000)  # past three export attempts
        idle = describe(proc.pid, fork)
        proc.terminate()
        await proc.wait()
        await drain
        return at_start, idle
    finally:
        await store.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def module_costs(top: int = 12) -> str:
    """RSS each top-level package adds when a fresh interpreter imports what the worker runs."""
    code = r"""
import builtins, collections, sys
def rss():
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith('VmRSS'))
real, stack, own = builtins.__import__, [], collections.Counter()
def counting(name, globals=None, locals=None, fromlist=(), level=0):
    if level or name in sys.modules:
        return real(name, globals, locals, fromlist, level)
    before = rss(); stack.append(0.0)
    try:
        return real(name, globals, locals, fromlist, level)
    finally:
        nested = stack.pop(); spent = rss() - before
        own[name.split('.')[0]] += spent - nested
        if stack: stack[-1] += spent
base = rss(); builtins.__import__ = counting
import jobbers.cli, jobbers.worker, jobbers.telemetry.providers, benchmarks.bench_tasks
builtins.__import__ = real
print(f'{rss():.1f} MB RSS after the imports ({rss() - base:.1f} MB added, {len(sys.modules)} modules)')
for name, mb in own.most_common(TOP):
    print(f'  {name:24s} {mb:5.1f} MB')
""".replace("TOP", str(top))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.rstrip()


async def main(args: argparse.Namespace) -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "jobbers")], check=True)  # noqa: ASYNC221
    server = RedisServer(find_redis_servers().get("system") or next(iter(find_redis_servers().values())))
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="jobbers-memory-"))
    sql = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    config = ConfigStore(sql)
    await config.migrate()
    await config.close()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "WORKER_", "LOG_"))}
    base.update({"REDIS_URL": server.url, "SQL_PATH": sql, "PYTHONPATH": str(ROOT), "WORKER_TTL": "0",
                 "OTEL_METRIC_EXPORT_INTERVAL": str(EXPORT_INTERVAL_MS)})  # fmt: skip
    if args.recycle == "fork":
        base["WORKER_TTL"] = "1000"
    if args.protocol != "grpc":
        base["OTEL_EXPORTER_OTLP_PROTOCOL"] = args.protocol
    print(f"python {sys.version.split()[0]}; OTLP {args.protocol}; load {os.getloadavg()[0]:.2f}")
    try:
        for collector in args.collector.split(","):
            sink: socket.socket | None = None
            grpc_server: Any = None
            if collector == "answering" and args.protocol == "grpc":
                grpc_server, port = answering_collector()
            elif collector in ("hung", "answering"):
                sink = socket.socket()
                sink.bind(("127.0.0.1", 0))
                sink.listen(1024)
                port = sink.getsockname()[1]
            else:
                port = free_port()
            env = {**base, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}
            started = time.perf_counter()
            at_start, idle = await worker_rss(env, server.url, args.recycle == "fork")
            print(
                f"collector {collector:9s}: RSS at start {at_start}, idle after 3 exports "
                f"{idle} (budget 80 MB)  [{time.perf_counter() - started:.1f} s]"
            )
            if sink is not None:
                sink.close()
            if grpc_server is not None:
                grpc_server.stop(0)
    finally:
        server.stop()
    if args.modules:
        print(module_costs())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--collector", default="refused,hung,answering")
    parser.add_argument("--protocol", choices=("grpc", "http/protobuf"), default="grpc")
    parser.add_argument("--recycle", choices=("exit", "fork"), default="exit")
    parser.add_argument("--modules", action="store_true", help="also the RSS each imported package adds")
    asyncio.run(main(parser.parse_args()))
