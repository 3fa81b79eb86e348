"""Every Redis key name, in one place: the keys of a queue's key space, and the few global ones.

A *key space* is the prefix that every key of one queue starts with: its ready and schedule sets,
rate window and pause flag, its concurrency keys' slots and waiters, the records of its
tasks (each with its own events) and their indexes (status, in-flight, dead letters), the queue's
audit log, idempotency records, throughput counts, lease counter and the task-type stall config its
workers published. Each queue's space is its own
Redis Cluster hash tag, made from the global prefix and the queue name (``{jobbers:emails}:`` for
queue ``emails`` under the default prefix ``{jobbers}:``), so on a cluster different queues spread
over the shards while every key a script touches lies in one slot; on one Redis the same names
simply share the node.

Global keys, under the prefix itself (one slot): the set of queue names, the workers registry and
each worker's report, and the *locator* (task id -> queue) through which a task known only by id
is found: one HGET, then its record in its queue's space.

The Lua scripts get the same names from ``lua_key_helpers()``, generated from the templates
below, so no key name is spelled twice.
"""

from __future__ import annotations

#: The prefix of every key unless ``REDIS_KEY_PREFIX`` says otherwise (a Redis Cluster hash tag).
DEFAULT_PREFIX = "{jobbers}:"

#: Keys inside a key space: name -> template after the space's prefix ("{}" = the varying part).
SPACE_KEYS: dict[str, str] = {
    # hash: one task record (payload fields are msgpack; its events in 'ev:<stream id>', lua/_common.lua)
    "task": "task:{}",
    "ready": "queue:{}",  # zset: ready task ids of a queue, score = enqueue time (ms)
    "sched": "sched:{}",  # zset: scheduled/retry-delayed ids of a queue, score = run_at (ms)
    "rate": "rate:{}",  # zset: starts of a queue within the rate window, score = start time (ms)
    "paused": "paused:{}",  # string "1" while a queue is paused (no claim starts anything from it)
    "conc": "conc:{}",  # zset per "<queue>:<concurrency key>": holders of its slots, score = lapse (ms)
    "blocked": "blocked:{}",  # zset per "<queue>:<concurrency key>": waiting ids, score = ready score
    "conc_due": "conc_due:{}",  # zset per queue: concurrency keys with waiters, score = earliest lapse (ms)
    # zset per "<queue>:<task name>": ready tasks of an external type (register_external_task),
    # scored as in the ready set; claimed over HTTP (ext_claim), never read by a worker's claim
    "external": "external:{}",
    "extnames": "extnames:{}",  # set per queue: the external task names that have had ready tasks
    # zset: ids per status, score = time of entering it (ms); a space holds one queue's tasks, so
    # its 'started' index is the queue's running tasks (what max_concurrent counts)
    "status": "status:{}",
    "idem": "idem:{}",  # string: idempotency key -> "<task id> <request fingerprint>"
    "tasktype": "tasktype:{}",  # hash per "name:version": stall config published by workers
    "throughput": "throughput:{}",  # hash per minute (ms // 60000): "queue:status" -> terminals; kept 1 h
    # hash per workflow run: its graph (each node's submit row and edges, stored once), countdowns, status
    "wf": "wf:{}",
    "wfs": "wfs",  # zset: the workflow runs of the space, score = created (ms)
    # hash: effects of workflow runs on other spaces, relayed by the scheduler (see _common.lua)
    "wf_outbox": "wf_outbox",
    "wf_recurring": "wf_recurring",  # hash: recurring entry key -> the last workflow run it fired here
    "inflight": "inflight",  # zset: started task ids, score = lease deadline (ms, Redis time)
    "dlq": "dlq",  # zset: dead-lettered task ids, score = time dead-lettered (ms)
    "lease_counter": "lease_counter",  # string counter making lease tokens unique
    # stream: the space's audit log, one entry per event (capped at AUDIT_MAX_EVENTS, trimmed by
    # age by the cleaner); fields t (task id), y (type), a (attempt), w (worker), n (task name),
    # c (correlation id), d (detail)
    "audit": "audit",
    # never written: the write that changes nothing with which a script states its rule for an
    # out-of-memory Redis before Redis 7 (state/scripts.py, OOM_RULES)
    "oom_guard": "oom_guard",
}
#: Keys outside every space: what no single queue owns.
GLOBAL_KEYS: dict[str, str] = {
    "queues": "queues",  # set: every queue name that ever held a task
    "locator": "task_queue",  # hash: task id -> its queue (HSETNX at submit, HDEL when pruned)
    "workflows": "workflow_queue",  # hash: workflow run id -> the queue whose space holds it
    "workers": "workers",  # zset: worker ids, score = when their last report expires (ms, Redis time)
    "worker": "worker:{}",  # hash per worker id: role, queues, running... (expires with its liveness)
}
#: Pub/sub channels (not keys: a cluster does not route them by slot), under the global prefix.
CHANNELS: dict[str, str] = {
    "wake": "wake",  # a queue name, published when it gets ready work
    "cancel": "cancel",  # a task id whose cancellation was requested
    "sched": "sched",  # published when something is scheduled
    # every status change of one script call: "<ms> <id> <old> <new> <id> ..." (state/transitions.py)
    "transitions": "transitions",
}


def _head(name: str) -> str:
    """What comes before the varying part of a space key's template (every template ends in it)."""
    head, braces, tail = SPACE_KEYS[name].partition("{}")
    assert braces and not tail, name
    return head


_TASK, _STATUS, _IDEM, _TASKTYPE, _THROUGHPUT = map(
    _head, ("task", "status", "idem", "tasktype", "throughput")
)
_WF, _EXTERNAL = _head("wf"), _head("external")
_READY, _SCHED, _RATE, _PAUSED, _CONC_DUE = map(_head, ("ready", "sched", "rate", "paused", "conc_due"))


class Space:
    """The keys of one key space (``prefix`` + template)."""

    __slots__ = (
        "audit", "dlq", "inflight", "lease_counter", "prefix", "queue", "wf_outbox", "wf_recurring", "wfs"
    )  # fmt: skip

    def __init__(self, prefix: str, queue: str = "") -> None:
        self.prefix = prefix
        #: The queue whose space this is ("" for a space made by hand, as some tests do).
        self.queue = queue
        self.inflight = prefix + SPACE_KEYS["inflight"]
        self.dlq = prefix + SPACE_KEYS["dlq"]
        self.lease_counter = prefix + SPACE_KEYS["lease_counter"]
        self.wfs = prefix + SPACE_KEYS["wfs"]
        self.audit = prefix + SPACE_KEYS["audit"]
        self.wf_recurring = prefix + SPACE_KEYS["wf_recurring"]
        self.wf_outbox = prefix + SPACE_KEYS["wf_outbox"]

    def task(self, task_id: str) -> str:
        return self.prefix + _TASK + task_id

    def status(self, status: str) -> str:
        return self.prefix + _STATUS + status

    def idem(self, key: str) -> str:
        return self.prefix + _IDEM + key

    def tasktype(self, name_version: str) -> str:
        return self.prefix + _TASKTYPE + name_version

    def wf(self, workflow_id: str) -> str:
        return self.prefix + _WF + workflow_id

    def external(self, queue: str, name: str) -> str:
        """The external ready set of task ``name`` in ``queue`` (this space's queue)."""
        return self.prefix + _EXTERNAL + queue + ":" + name

    def throughput(self, minute: int) -> str:
        return self.prefix + _THROUGHPUT + str(minute)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and other.prefix == self.prefix

    def __hash__(self) -> int:
        return hash(self.prefix)

    def __repr__(self) -> str:
        return f"Space({self.prefix!r})"


class QueueKeys:
    """The keys of one queue, and the space they (and its tasks' records) live in."""

    __slots__ = ("conc_due", "name", "paused", "rate", "ready", "sched", "space")

    def __init__(self, name: str, space: Space) -> None:
        self.name = name
        self.space = space
        self.ready = space.prefix + _READY + name
        self.sched = space.prefix + _SCHED + name
        self.rate = space.prefix + _RATE + name
        self.paused = space.prefix + _PAUSED + name
        self.conc_due = space.prefix + _CONC_DUE + name


def tag_base(prefix: str) -> str:
    """The name inside every queue's hash tag: the prefix without its braces and trailing ``:``."""
    return prefix.replace("{", "").replace("}", "").rstrip(":") or "jobbers"


class Keys:
    """Key names under one prefix: each queue's keys, the global keys, the channels."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self._tag = "{" + tag_base(prefix) + ":"
        self.queues = prefix + GLOBAL_KEYS["queues"]
        self.locator = prefix + GLOBAL_KEYS["locator"]
        self.workers = prefix + GLOBAL_KEYS["workers"]
        self.workflows = prefix + GLOBAL_KEYS["workflows"]
        self.wake_channel = prefix + CHANNELS["wake"]
        self.cancel_channel = prefix + CHANNELS["cancel"]
        self.sched_channel = prefix + CHANNELS["sched"]
        self.transitions_channel = prefix + CHANNELS["transitions"]
        self._queues: dict[str, QueueKeys] = {}

    def space_prefix(self, queue: str) -> str:
        """The prefix of ``queue``'s key space (its own hash tag): the one place that decides where
        a queue lives. Queue names hold no braces (``models.queue_config.NAME_PATTERN``)."""
        return self._tag + queue + "}:"

    def queue(self, name: str) -> QueueKeys:
        """The keys of queue ``name`` (built once per name)."""
        keys = self._queues.get(name)
        if keys is None:
            keys = self._queues[name] = QueueKeys(name, Space(self.space_prefix(name), name))
        return keys

    def space(self, queue: str) -> Space:
        """The key space of ``queue``: where its keys and the records of its tasks live."""
        return self.queue(queue).space

    @property
    def space_glob(self) -> str:
        """A SCAN pattern matching every key of every queue's space."""
        return _glob_escape(self._tag) + "*"

    def worker(self, worker_id: str) -> str:
        return self.prefix + GLOBAL_KEYS["worker"].format(worker_id)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def lua_key_helpers() -> str:
    """Lua locals naming every key of the call's space ``S`` (``K_task(id)``, ``K_inflight`` ...)
    and the channels under the global prefix ``G`` (``C_wake`` ...)."""
    lines = []
    for name, template in SPACE_KEYS.items():
        if "{}" in template:
            lines.append(f"local function K_{name}(x) return S .. '{_head(name)}' .. x end")
        else:
            lines.append(f"local K_{name} = S .. '{template}'")
    for name, suffix in CHANNELS.items():
        lines.append(f"local C_{name} = G .. '{suffix}'")
    return "\n".join(lines) + "\n"
