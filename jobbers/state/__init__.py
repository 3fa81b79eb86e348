"""The Redis data layer: the only code that knows key names, Lua, or Redis commands.

Nothing outside this package touches the Redis client: other rooms call ``TaskStore`` (including
``close()``, ``ping()`` and ``listener()``), ``TaskQueries`` and ``PlatformStats``.

Modules: ``keys`` (every key name), ``task_schema`` (every task field and the rows the scripts
take and give), ``scripts`` (the generated Lua preamble, loading and calling), ``lua/*.lua`` (one
script per state transition, plus ``_common.lua``), ``store`` (``TaskStore``), ``records`` (the
plain data it takes and returns), ``codec`` (value encodings), ``queries`` and ``stats`` (read-only
listings and figures), ``walks`` (listings followed page by page to their end), ``transitions``
(the live feed of status changes), ``connection`` (clients, pub/sub listener), ``reconnect``
(back-off).

Where keys live
---------------
A queue is the unit of sharding. Every key of a queue lives in that queue's *key space*
(``Keys.queue(name).space``, or ``Keys.space(name)``): its ready set, schedule, rate
window and pause flag, the slots and waiters of its concurrency keys, the records of its tasks and
their indexes (status, in-flight, dead letters), its idempotency records, throughput counts, lease
counter, and the task-type stall config its workers publish. Each space is its own Redis Cluster
hash tag (``{jobbers:emails}:`` for queue ``emails`` under the default ``REDIS_KEY_PREFIX``
``{jobbers}:``), so on a cluster queues spread over the shards; on one Redis they share the node
and nothing else changes. A new piece of per-queue or per-task state goes in the space of its
queue (add it to ``keys.SPACE_KEYS``; the scripts get a ``K_*`` helper for it).

Global keys, under the prefix itself (one slot), are only what no queue owns: the set of queue
names, the workers registry and each worker's report, and the locator (task id -> queue, written
beside the submit call with HSETNX semantics, removed when the task is pruned). The pub/sub
channels (wake, cancel, sched, transitions) are global too; a cluster broadcasts them to every
node.

Reaching tasks without their queue: a look-up by id is one HMGET of the locator, then the record
in its queue's space (``TaskStore.locate``; at most two round trips; a worker's own tasks need no
look-up). Work over every queue (listings, stats, recovery, pruning) runs one call per queue's
space, pipelined, and merges: listings in (score, id) order, so their cursors still resume exactly
after the last task returned. What only holds within one queue: a script is atomic within its
queue's space; across queues, effects are separate calls.

How scripts touch keys
----------------------
Every script call works in exactly one key space (one queue's), passed as ``ARGV[1]`` (the global prefix is
``ARGV[2]``, used only for channel names). It declares in ``KEYS`` the keys it is given or can name
before it runs: a queue's ready set for each queue it serves, the index it walks, the record of
each task it is given by id. What it can only learn while running (a task id popped from a
queue, the status index a task moves to, the record of a task found in an index) it names with
the generated ``K_*`` helpers inside the same space, so it shares the hash tag of ``KEYS[1]``; the
generated preamble refuses a call whose ``KEYS[1]`` lies outside the space. A cluster routes the
call by its ``KEYS`` and every key it forms is in that slot. The one script on global keys
(``worker_seen``) declares them all.

A task becomes ready in exactly one place, ``make_ready`` in ``lua/_common.lua`` (submit, retry,
lease recovery, promotion, DLQ resubmit all call it): it sets the ready-queue score, the status
index and the wake-up. A feature that changes what "ready" means (priorities, pausing a queue,
concurrency keys, an event log) changes that function. Likewise ``make_scheduled``, ``release``
(leaving ``started``) and ``end_task`` (a terminal status); every status change goes through
``move_status``, which refuses a move outside ``models.task.ALLOWED_TRANSITIONS`` and collects the
change for the transitions channel (published once per script call, for ``jobbers tail``).

How to add a task field
-----------------------
Say tasks get a ``priority`` that submitters set and workers see:

1. Declare it once in ``task_schema.TASK_FIELDS``: ``TaskField("priority", submit="priority",
   encode=..., claim="priority", claim_decode=integer, show="priority", show_decode=integer)``
   (leave out ``claim``/``show`` when workers or the API do not need it; ``optional=True`` when
   a submitter may leave it out, so an absent value is not stored).
2. Give the classes the attribute it names: ``NewTask.priority`` (what is submitted),
   ``ClaimedTask.priority`` (in the claim row's order: ``tests/test_task_schema.py`` says where),
   ``models.task.Task.priority`` (what ``/task-status`` shows); the API's ``SubmitTask`` and
   ``task_builder.build_new_task`` if users set it.
3. Use it. The submit script stores every submitted field it is given, the claim reads every
   claimed field, and ``decode_task`` shows every shown one, all generated from the declaration;
   in Lua the submitted value is ``t[SUBMIT.priority]`` and the stored one is the record's
   ``priority`` field (for a ready-queue score, in ``make_ready``).
4. Add a sample value to ``tests/test_task_schema.py``, which checks that every declared field is
   carried from submit through the claim to ``/task-status``.
"""

from jobbers.state.store import TaskStore

__all__ = ["TaskStore"]
