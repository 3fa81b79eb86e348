"""Workflow benchmark: submitting a wide fan-out, and the Redis memory its graph takes.

    JOBBERS_TEST_REDIS_SERVER=/usr/bin/redis-server python benchmarks/workflows.py [--width 10000]

Starts its own redis-server, submits one run ``root -> width leaves -> collector`` (the collector
asks for every leaf's result), and prints the submit time, the memory the run added (``INFO
memory`` used_memory before and after), the size of its graph hash and of one leaf's task record,
and the time of the root's finish (which makes every leaf ready in one script call). Each node's
spec is stored once in the graph, never copied into the tasks. With ``--across``, the leaves sit
in another queue than the run's (another key space): the root's finish then writes one outbox
entry per leaf, and the time the scheduler's relay takes to make them all is printed too. It
measures; it never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobbers.models.queue_config import QueueConfig  # noqa: E402
from jobbers.models.task import TaskStatus  # noqa: E402
from jobbers.state.connection import connect  # noqa: E402
from jobbers.state.store import NewTask, Outcome, TaskStore, new_task_id  # noqa: E402
from jobbers.state.workflows import WorkflowNode, relay_workflow_outbox, submit_workflow  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402


def _node(
    wid: str, node: str, after: tuple[str, ...] = (), queue: str = "default", **kw: str
) -> WorkflowNode:
    task = NewTask(name="noop", params={"i": node}, queue=queue, workflow_id=wid, workflow_node=node)
    return WorkflowNode(node=node, task=task, after=after, **kw)  # type: ignore[arg-type]


async def run(width: int, url: str, across: bool) -> None:
    redis = connect(url)
    store = TaskStore(redis)
    wid = new_task_id()
    leaves = [f"leaf{i}" for i in range(width)]
    nodes = [
        _node(wid, "root"),
        *(_node(wid, leaf, ("root",), queue="other" if across else "default") for leaf in leaves),
        _node(wid, "collect", tuple(leaves), results_param="results"),
    ]
    before = int((await redis.info("memory"))["used_memory"])
    t0 = time.perf_counter()
    await submit_workflow(store, wid, "fan-out", nodes)
    submit_s = time.perf_counter() - t0
    after = int((await redis.info("memory"))["used_memory"])
    graph = int(await redis.memory_usage(store.keys.space("default").wf(wid), samples=0) or 0)
    (root,) = (await store.claim("bench", 60, 1, [QueueConfig(name="default")])).tasks
    t0 = time.perf_counter()
    await store.finish([Outcome(id=root.id, token=root.token, status=TaskStatus.COMPLETED)])
    finish_s = time.perf_counter() - t0
    relay_s = 0.0
    leaf_queue = "other" if across else "default"
    if across:
        t0 = time.perf_counter()
        while await relay_workflow_outbox(store, ["default", leaf_queue], limit=1000):
            pass
        relay_s = time.perf_counter() - t0
    leaf = (await store.claim("bench", 60, 1, [QueueConfig(name=leaf_queue)])).tasks[0]
    record = int(await redis.memory_usage(store.keys.space(leaf_queue).task(leaf.id), samples=0) or 0)
    where = "in another queue (through the outbox)" if across else "in the run's queue"
    print(f"fan-out of {width} nodes (+ root and collector), leaves {where}")
    print(f"  submit: {submit_s * 1000:.0f} ms ({submit_s / (width + 2) * 1e6:.1f} us/node)")
    added = after - before
    print(f"  redis memory added by the submit: {added / 1e6:.2f} MB ({added / (width + 2):.0f} B/node)")
    print(f"  graph hash: {graph / 1e6:.2f} MB; one leaf's task record once made ready: {record} B")
    if across:
        print(f"  root's finish writing {width} outbox entries: {finish_s * 1000:.0f} ms")
        print(f"  relaying them (each leaf made ready in its queue): {relay_s * 1000:.0f} ms")
    else:
        print(f"  root's finish making {width} leaves ready: {finish_s * 1000:.0f} ms")
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=10000)
    parser.add_argument("--across", action="store_true", help="the leaves in another queue than the run's")
    args = parser.parse_args()
    binary = os.environ.get("JOBBERS_TEST_REDIS_SERVER") or shutil.which("redis-server") or "redis-server"
    server = RedisServer(binary)
    server.start()
    try:
        asyncio.run(run(args.width, server.url, args.across))
    finally:
        server.kill()


if __name__ == "__main__":
    main()
