"""Every Redis key name, in one place.

All keys start with one prefix (by default ``{jobbers}:``, a Redis Cluster hash tag, so every
key a script touches lives in one slot). The Lua scripts get the same names through
``lua_preamble()``, generated from the templates below, so no key name is spelled twice.
"""

from __future__ import annotations

#: name -> (template suffix after the prefix, what it holds)
KEY_TEMPLATES: dict[str, str] = {
    "task": "task:{}",  # hash: one task record (payload fields are msgpack)
    "queue": "queue:{}",  # zset: ready task ids of a queue, score = enqueue time (ms)
    "sched": "sched:{}",  # zset: scheduled/retry-delayed ids of a queue, score = run_at (ms)
    "running": "running:{}",  # set: ids of a queue currently started (max_concurrent)
    "rate": "rate:{}",  # zset: starts of a queue within the rate window, score = start time (ms)
    "status": "status:{}",  # zset: ids per status, score = time of entering it (ms)
    "idem": "idem:{}",  # string: idempotency key -> task id
    "tasktype": "tasktype:{}",  # hash per "name:version": stall config published by workers
    "throughput": "throughput:{}",  # hash per minute (ms // 60000): "queue:status" -> terminals; kept 1 h
    "worker": "worker:{}",  # hash per worker id: role, queues, running... (expires with its liveness)
}
SINGLE_KEYS: dict[str, str] = {
    "inflight": "inflight",  # zset: started task ids, score = lease deadline (ms, Redis time)
    "dlq": "dlq",  # zset: dead-lettered task ids, score = time dead-lettered (ms)
    "queues": "queues",  # set: every queue name that ever held a task
    "lease_counter": "lease_counter",  # string counter making lease tokens unique
    "wake_channel": "wake",  # pub/sub: a queue name, published when it gets ready work
    "cancel_channel": "cancel",  # pub/sub: a task id whose cancellation was requested
    "sched_channel": "sched",  # pub/sub: published when something is scheduled
    "workers": "workers",  # zset: worker ids, score = when their last report expires (ms, Redis time)
}


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.inflight = prefix + SINGLE_KEYS["inflight"]
        self.dlq = prefix + SINGLE_KEYS["dlq"]
        self.queues = prefix + SINGLE_KEYS["queues"]
        self.wake_channel = prefix + SINGLE_KEYS["wake_channel"]
        self.cancel_channel = prefix + SINGLE_KEYS["cancel_channel"]
        self.sched_channel = prefix + SINGLE_KEYS["sched_channel"]
        self.workers = prefix + SINGLE_KEYS["workers"]

    def task(self, task_id: str) -> str:
        return self.prefix + KEY_TEMPLATES["task"].format(task_id)

    def queue(self, name: str) -> str:
        return self.prefix + KEY_TEMPLATES["queue"].format(name)

    def sched(self, name: str) -> str:
        return self.prefix + KEY_TEMPLATES["sched"].format(name)

    def running(self, name: str) -> str:
        return self.prefix + KEY_TEMPLATES["running"].format(name)

    def rate(self, name: str) -> str:
        return self.prefix + KEY_TEMPLATES["rate"].format(name)

    def status(self, status: str) -> str:
        return self.prefix + KEY_TEMPLATES["status"].format(status)

    def idem(self, key: str) -> str:
        return self.prefix + KEY_TEMPLATES["idem"].format(key)

    def tasktype(self, name_version: str) -> str:
        return self.prefix + KEY_TEMPLATES["tasktype"].format(name_version)

    def throughput(self, minute: int) -> str:
        return self.prefix + KEY_TEMPLATES["throughput"].format(minute)

    def worker(self, worker_id: str) -> str:
        return self.prefix + KEY_TEMPLATES["worker"].format(worker_id)


def lua_preamble() -> str:
    """Lua helpers prepended to every script: ``P`` is the prefix, passed as ``ARGV[1]``."""
    lines = ["local P = ARGV[1]"]
    for name, template in KEY_TEMPLATES.items():
        head, tail = template.split("{}")
        lines.append(f"local function K_{name}(x) return P .. '{head}' .. x .. '{tail}' end")
    for name, suffix in SINGLE_KEYS.items():
        lines.append(f"local K_{name} = P .. '{suffix}'")
    return "\n".join(lines) + "\n"
