"""Cluster benchmark: processing throughput on a Redis Cluster of 1 shard vs 3 shards.

    python benchmarks/cluster.py [--tasks 30000] [--queues 6] [--workers 3] [--concurrency 200]

For each shape it starts its own cluster on loopback ports (1 master owning every slot; then 3
masters made by ``redis-cli --cluster create``), creates ``--queues`` queues spread evenly over
the masters, submits ``--tasks`` no-op tasks across them, starts ``--workers`` real
``jobbers_worker`` processes, and prints the processing rate and each shard's Redis CPU per task.
On a 2-core machine the absolute gain is bounded (the workers and the shards share the cores);
the shape of the figures (load split over the shards, CPU per task per shard) is what it shows.
It measures; it never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobbers.config_store import ConfigStore  # noqa: E402
from jobbers.models.queue_config import QueueConfig  # noqa: E402
from jobbers.models.task import TaskStatus  # noqa: E402
from jobbers.state.connection import connect  # noqa: E402
from jobbers.state.keys import Keys  # noqa: E402
from jobbers.state.queries import TaskQueries  # noqa: E402
from jobbers.state.store import NewTask, TaskStore  # noqa: E402
from tests.topology import Node, _binary, _slot_ranges, wait_for  # noqa: E402

PREFIX = "{bench}:"


def start_cluster(shards: int, root: Path) -> list[Node]:
    nodes = [
        Node(_binary(), root, f"n{i}", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
        for i in range(shards)
    ]
    for node in nodes:
        node.args += ["--appendonly", "no"]
        node.start()
    if shards == 1:
        nodes[0].client().execute_command("CLUSTER", "ADDSLOTS", *range(16384))
    else:
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(n.address for n in nodes), "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
    wait_for(
        lambda: all(n.client().cluster("info")["cluster_state"] == "ok" for n in nodes), "cluster not ready"
    )
    return nodes


def spread_queues(nodes: list[Node], count: int) -> list[str]:
    """``count`` queue names, as evenly over the masters as their slots allow."""
    keys = Keys(PREFIX)
    ranges = {n.port: _slot_ranges(n) for n in nodes}
    per_node: dict[int, list[str]] = {n.port: [] for n in nodes}
    i = 0
    while sum(len(v) for v in per_node.values()) < count:
        name = f"q{i}"
        i += 1
        slot = int(nodes[0].client().cluster("keyslot", keys.queue(name).ready))
        owner = next(port for port, rs in ranges.items() if any(a <= slot <= b for a, b in rs))
        if len(per_node[owner]) < -(-count // len(nodes)):
            per_node[owner].append(name)
    return [q for names in per_node.values() for q in names]


def cpu(node: Node) -> float:
    info = node.client().info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def run_shape(shards: int, args: argparse.Namespace) -> tuple[float, list[float], list[int]]:
    root = Path(tempfile.mkdtemp(prefix=f"jobbers-bench-{shards}-"))
    nodes = start_cluster(shards, root)
    url = "redis+cluster://" + ",".join(n.address for n in nodes)
    sql = f"sqlite+aiosqlite:///{root / 'bench.db'}"
    config = ConfigStore(sql)
    await config.migrate()
    queues = spread_queues(nodes, args.queues)
    for queue in queues:
        await config.create_queue(QueueConfig(name=queue))
    store = TaskStore(connect(url), PREFIX)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        tasks = [NewTask(name="noop", queue=queues[i % len(queues)]) for i in range(args.tasks)]
        await store.submit_many(tasks)
        keys_per_node = [int(n.client().dbsize()) for n in nodes]
        before = [cpu(n) for n in nodes]
        env = {
            **os.environ,
            "REDIS_URL": url,
            "REDIS_KEY_PREFIX": PREFIX,
            "SQL_PATH": sql,
            "WORKER_TTL": "0",
            "LOG_LEVEL": "WARNING",
            "OTEL_SDK_DISABLED": "true",
            "WORKER_CONCURRENT_TASKS": str(args.concurrency),
            "PYTHONPATH": str(ROOT),
        }
        worker_bin = str(Path(sys.executable).parent / "jobbers_worker")
        t0 = time.perf_counter()
        workers = [
            subprocess.Popen([worker_bin, "benchmarks.bench_tasks"], env=env) for _ in range(args.workers)
        ]
        queries = TaskQueries(store)
        while await queries.count_in_status(TaskStatus.COMPLETED) < args.tasks:
            if time.perf_counter() - t0 > 600:
                raise TimeoutError("the workers did not finish in 10 minutes")
            await asyncio.sleep(0.05)
        rate = args.tasks / (time.perf_counter() - t0)
        per_task_us = [(cpu(n) - b) / args.tasks * 1e6 for n, b in zip(nodes, before, strict=True)]
        return rate, per_task_us, keys_per_node
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
        await store.close()
        await config.close()
        for node in nodes:
            node.kill()


async def main(args: argparse.Namespace) -> None:
    print(
        f"{args.tasks} no-op tasks over {args.queues} queues; {args.workers} worker processes x "
        f"{args.concurrency} concurrent tasks; python {sys.version.split()[0]}"
    )
    for shards in (1, 3):
        rate, per_task, keys = await run_shape(shards, args)
        cpu_text = ", ".join(f"{us:.1f}" for us in per_task)
        print(
            f"{shards} shard{'s' if shards > 1 else ' '}: processing {rate:>9,.0f} tasks/s; Redis CPU per task by "
            f"shard [{cpu_text}] us (sum {sum(per_task):.1f} us); keys by shard {keys}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=30_000)
    parser.add_argument("--queues", type=int, default=6)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
