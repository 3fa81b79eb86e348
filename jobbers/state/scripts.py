"""The Lua scripts: their generated preamble, loading, and the one way they are called.

Every script is ``preamble + lua/_common.lua + lua/<name>.lua``. The preamble is generated from
Python, so nothing the scripts share is spelled twice:

- the call's key space ``S`` (``ARGV[1]``) and the global prefix ``G`` (``ARGV[2]``), with a check
  that ``KEYS[1]`` lies in ``S``, and the key helpers ``K_*`` / channels ``C_*`` (``keys.py``);
- every status (``SUBMITTED`` ...), the sets ``TERMINAL``, ``CANCELLABLE``, ``DEAD_LETTER`` and the
  transition table ``ALLOWED`` (``models.task``); the outcome names (``CANCEL_*``, ``RESUBMIT_*``,
  ``SUBMIT_*``) and retry kinds (``RETRY``, ``REQUEUE``) (``models.outcomes``); the event kinds
  (``EV_*``, ``models.event``);
- the event log's limits (``AUDIT_MAXLEN`` ...: ``lua_audit_constants``);
- the rows' helpers (``task_schema.lua_row_helpers``); row positions (``SUBMIT.queue``) are
  written into the script bodies as numbers (``task_schema.lua_row_positions``).

The script body runs inside a function, and the effects it collected (wake-ups, the schedule
signal, throughput counts; see ``_common.lua``) are flushed after it returns, so no script can
forget to publish what it made ready.

Out of memory (``maxmemory`` reached, ``noeviction``), Redis refuses a script's first write that
may grow memory and lets any write after it through (it cannot stop a script half-done), so
without a rule of its own whether a script runs depends on which write it happens to make first.
``OOM_RULES`` gives the scripts that matter one: ``allow`` runs them regardless (renewal keeps the
leases of running tasks, a worker's report keeps it listed alive, an attempt's outcome is kept,
pruning frees memory: none grows it beyond a few fields and events), ``deny`` refuses them whole
before they change anything (a claim, and the recovery of leases and hung tasks: nothing may be
taken back from a worker while Redis is out of memory). On Redis 7 and later the rule is the
script's flags (``#!lua flags=allow-oom`` or ``#!lua``, which Redis refuses whole when out of
memory); Redis 6 has no flags, so the script opens with a write that changes nothing (to a key
that never exists, ``K_oom_guard``): a ``DEL``, which never needs memory (``allow``: every write
after it goes through), or a ``SET ... XX``, which may (``deny``: refused before anything else).
A client learns which it has when it first loads a script with a rule.

On Redis 7 and later each script is called as a Redis Function (``FCALL``) of a library of its
own (``function_library``), named by a hash of its source like a script by its SHA, so clients of
two versions never call each other's. A script's main chunk runs on every ``EVALSHA``, building
each of its helpers and tables again (about 20-25 us of Redis CPU per call); a library builds them
once, when it is loaded, and each call only resets the state a call collects. As a function a
script states its rule by its flags (``allow-oom``, none for ``deny``; ``no-writes`` for the
scripts in ``READ_ONLY``), and one with no rule is refused whole while Redis is out of memory. A
library is loaded when a call finds it missing (a restart without persistence, a node new to a
cluster; a replica promoted at a failover has its primary's), and a call whose library cannot be
loaded (out of memory, no permission) or a Redis without ``FCALL`` runs the script by ``EVALSHA``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Sequence
from enum import StrEnum
from importlib import resources
from typing import Any, NamedTuple

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from jobbers.models.event import EventKind
from jobbers.models.outcomes import CancelKind, ResubmitKind, RetryKind, SubmitKind
from jobbers.models.task import (
    ALLOWED_TRANSITIONS,
    CANCELLABLE_STATUSES,
    DEAD_LETTER_STATUSES,
    TERMINAL_STATUSES,
    TaskStatus,
)
from jobbers.models.workflow import WorkflowStatus
from jobbers.state.keys import Space, lua_key_helpers
from jobbers.state.task_schema import lua_row_helpers, lua_row_positions

SCRIPT_NAMES = (
    "submit",
    "claim",
    "renew",
    "finish",
    "cancel",
    "promote",
    "recover",
    "stall_silent",
    "prune",
    "prune_dlq",
    "prune_rate",
    "dlq_resubmit",
    "dlq_remove",
    "worker_seen",
    "queue_stats",
    "clear",
    "wf_submit",
    "wf_cancel",
    "wf_fan_out",
    "wf_settle",
    "wf_deliver",
    "wf_reopen",
    "ext_claim",
    "ext_take",
    "audit_summary",
)


class OomRule(StrEnum):
    """What a script does while Redis is out of memory (see the module's doc)."""

    ALLOW = "allow"  # runs: it only rewrites what is there or deletes, so it grows no memory
    DENY = "deny"  # refused whole, before it changes anything


OOM_RULES: dict[str, OomRule] = {
    "renew": OomRule.ALLOW,
    "prune": OomRule.ALLOW,
    "prune_dlq": OomRule.ALLOW,
    "prune_rate": OomRule.ALLOW,
    "dlq_remove": OomRule.ALLOW,
    "worker_seen": OomRule.ALLOW,  # a live worker's report rewrites its own fields
    # An attempt's outcome (its task ran) is written regardless: it adds a few fields and events,
    # and ends the lease that recovery would otherwise take back once memory returns.
    "finish": OomRule.ALLOW,
    # A promotion moves due scheduled tasks to their queue (a few fields and an event each); the
    # scheduler runs it every pass, and a pass refused at its first step would take back nothing.
    "promote": OomRule.ALLOW,
    "claim": OomRule.DENY,
    "ext_claim": OomRule.DENY,
    "recover": OomRule.DENY,
    "stall_silent": OomRule.DENY,
}

#: The first line of a script under each rule, on Redis 7 and later.
_SHEBANG = {OomRule.ALLOW: "#!lua flags=allow-oom\n", OomRule.DENY: "#!lua\n"}
#: The first write of a script under each rule, on Redis before 7: to a key that never exists.
_GUARD = {
    OomRule.ALLOW: "redis.call('DEL', K_oom_guard)  -- never needs memory: no later write is refused\n",
    OomRule.DENY: "redis.call('SET', K_oom_guard, '1', 'XX')  -- may need memory: refused if out of it\n",
}

#: Enums whose values the scripts use, and the prefix of their generated Lua names.
LUA_ENUMS: tuple[tuple[str, type[StrEnum]], ...] = (
    ("", TaskStatus),
    ("", RetryKind),
    ("SUBMIT_", SubmitKind),
    ("CANCEL_", CancelKind),
    ("RESUBMIT_", ResubmitKind),
    ("WF_", WorkflowStatus),
    ("EV_", EventKind),
)

#: How many events each queue's audit log keeps (about: trimmed with ``MAXLEN ~``) unless
#: ``AUDIT_MAX_EVENTS`` says otherwise.
DEFAULT_AUDIT_MAX_EVENTS = 100_000
#: Longest event detail kept (bytes; an error message is cut there).
MAX_EVENT_DETAIL = 1000
#: A running task's progress reports become a ``progress`` event at most this often (ms).
PROGRESS_EVENT_MS = 5000


def _lua_set(name: str, members: Sequence[str]) -> str:
    return f"local {name} = {{" + ", ".join(f"{m} = true" for m in sorted(members)) + "}"


def lua_model_constants() -> str:
    """Lua constants for every status and outcome, the status sets and the transition table."""
    lines = []
    for prefix, enum in LUA_ENUMS:
        for member in enum:
            lines.append(f"local {prefix}{member.name} = '{member.value}'")
    lines.append(_lua_set("TERMINAL", list(TERMINAL_STATUSES)))
    lines.append(_lua_set("CANCELLABLE", list(CANCELLABLE_STATUSES)))
    lines.append(_lua_set("DEAD_LETTER", list(DEAD_LETTER_STATUSES)))
    # ALLOWED[old][new]: looked up by constant strings, so checking a move allocates nothing.
    rows = ", ".join(
        f"{old.value} = {{" + ", ".join(f"{new.value} = true" for new in sorted(allowed)) + "}"
        for old, allowed in ALLOWED_TRANSITIONS.items()
        if allowed
    )
    lines.append(f"local ALLOWED = {{{rows}}}")
    return "\n".join(lines) + "\n"


_HEAD = """local S, G = ARGV[1], ARGV[2]
if string.sub(KEYS[1], 1, #S) ~= S then
  return redis.error_reply('jobbers: KEYS[1] ' .. KEYS[1] .. ' is outside the key space ' .. S)
end
"""


def lua_audit_constants(audit_max_events: int = DEFAULT_AUDIT_MAX_EVENTS) -> str:
    """The event log's limits: written into the source, so they cost a script nothing to read."""
    return (
        f"local AUDIT_MAXLEN = '{int(audit_max_events)}'\n"
        f"local MAX_EVENT_DETAIL = {MAX_EVENT_DETAIL}\n"
        f"local PROGRESS_EVENT_MS = {PROGRESS_EVENT_MS}\n"
    )


def lua_preamble(audit_max_events: int = DEFAULT_AUDIT_MAX_EVENTS) -> str:
    """Everything generated that a script may use (each script gets the part it uses)."""
    return (
        _HEAD
        + lua_key_helpers()
        + lua_model_constants()
        + lua_audit_constants(audit_max_events)
        + lua_row_helpers()
    )


_ROW_POSITION = re.compile(r"\b(?:SUBMIT|FINISH|CLAIM_READ)\.\w+")


def _with_row_positions(source: str) -> str:
    """``source`` with every row position (``SUBMIT.queue``) written as its number; an unknown
    name raises ``KeyError`` when the script is loaded, not when it runs."""
    positions = lua_row_positions()
    return _ROW_POSITION.sub(lambda m: str(positions[m.group(0)]), source)


_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_NOT_CODE = re.compile(r"--[^\n]*|'[^'\n]*'")
_DEFINED = re.compile(r"local\s+(?:function\s+(\w+)|([\w\s,]+?)\s*=)")


def _identifiers(source: str) -> set[str]:
    return set(_IDENTIFIER.findall(_NOT_CODE.sub(" ", source)))


def _definitions(source: str) -> list[tuple[set[str], str]]:
    """The top-level ``local`` definitions of ``source`` (with the comments above them), each with
    the names it defines."""
    blocks: list[list[str]] = []
    pending: list[str] = []
    for line in source.splitlines(keepends=True):
        if line.startswith("local "):
            blocks.append([*pending, line])
            pending = []
        elif line.startswith("--") or not line.strip():
            pending.append(line)
        elif blocks:  # the rest of a definition (its body, its closing 'end')
            blocks[-1] += [*pending, line]
            pending = []
    out = []
    for block in blocks:
        first = next(line for line in block if line.startswith("local "))
        found = _DEFINED.match(first)
        assert found, first
        names = {found.group(1)} if found.group(1) else {n.strip() for n in found.group(2).split(",")}
        out.append((names, "".join(block)))
    return out


def _used_by(code: str, definitions: list[tuple[set[str], str]]) -> str:
    """The definitions ``code`` needs, directly or through each other, in their order.

    The main chunk of a script runs on every call, building each of its tables and functions
    again, so a script carries only what it uses (a claim does not pay for the submit helpers).
    """
    needed = _identifiers(code)
    kept = []
    for names, text in reversed(definitions):  # a definition only uses those before it
        if names & needed:
            kept.append(text)
            needed |= _identifiers(text)
    return "".join(reversed(kept))


@functools.cache
def script_source(name: str, flags: bool = True, audit_max_events: int = DEFAULT_AUDIT_MAX_EVENTS) -> str:
    """The source of script ``name``: the check of its key space, the generated names and shared
    helpers it uses, its body, and the flush of the effects it collected. A script with an
    ``OOM_RULES`` entry states it by its flags, or (``flags=False``, for Redis before 7) by its
    first write. Built once per process (a ``WORKER_RECYCLE=fork`` parent builds them for its
    children)."""
    lua = resources.files("jobbers.state") / "lua"
    rule = OOM_RULES.get(name)
    guard = _GUARD[rule] if rule is not None and not flags else ""
    body = (
        "local function body()\n"
        + _with_row_positions((lua / f"{name}.lua").read_text())
        + "\nend\n" + guard + "local result = body()\nflush_effects()\nreturn result\n"
    )
    shebang = _SHEBANG[rule] if rule is not None and flags else ""
    return shebang + _HEAD + _used_by(body, _shared_definitions(audit_max_events)) + body


@functools.cache
def _shared_definitions(audit_max_events: int) -> list[tuple[set[str], str]]:
    """What every script may use (generated names, ``_common.lua``), parsed once per process."""
    lua = resources.files("jobbers.state") / "lua"
    common = _with_row_positions((lua / "_common.lua").read_text())
    shared = (
        lua_key_helpers() + lua_model_constants() + lua_audit_constants(audit_max_events) + lua_row_helpers()
        + common
    )
    return _definitions(shared)


def _flags_unknown(exc: ResponseError) -> bool:
    """Whether ``exc`` is a Redis before 7 failing to compile a script's flags line (``#!lua``)."""
    message = str(exc)
    return "Error compiling script" in message and "near '#'" in message


#: Scripts that only read (their functions are flagged ``no-writes``, so they run out of memory).
READ_ONLY = frozenset({"queue_stats", "audit_summary"})

#: A library's per-call state: a top-level local initialised to a fresh value (or from the call's
#: arguments) is reset at the start of every call instead of once at load.
_PER_CALL_VALUE = re.compile(r"\{\}|false|nil|nil, nil|\{\}, 1|false, ''")
_LOCAL_VALUE = re.compile(r"local\s+([\w\s,]+?)\s*=\s*(.*?)\s*(?:--.*)?")
_BODY_CALL = "local result = body()\nflush_effects()\nreturn result\n"


@functools.cache
def function_library(name: str, audit_max_events: int = DEFAULT_AUDIT_MAX_EVENTS) -> tuple[str, str]:
    """Script ``name`` as a Redis Function library: (the function's name, the library's source).

    The same code as ``script_source``: its helpers, constants and body are defined once, when the
    library is loaded; each call sets ``KEYS``, ``ARGV`` and the space ``S`` / ``G``, resets the
    state a call collects (the locals of ``_common.lua`` that start empty, the keys named from
    ``S``), checks ``KEYS[1]`` and runs the body and the flush as a script does.
    """
    source = script_source(name, audit_max_events=audit_max_events)
    if source.startswith("#!"):
        source = source.split("\n", 1)[1]
    if not source.startswith(_HEAD):
        raise ValueError(f"script {name} does not open with the key space check")
    definitions, body = source[len(_HEAD) :].split("local function body()\n", 1)
    if not body.endswith(_BODY_CALL):
        raise ValueError(f"script {name} does not end by running its body")
    body = "local function body()\n" + body[: -len(_BODY_CALL)]
    declared, resets, static = [], [], []
    for _names, text in _definitions(definitions):
        first = next(line for line in text.splitlines() if line.startswith("local "))
        found = _LOCAL_VALUE.fullmatch(first)
        if first.startswith("local function") or found is None:
            static.append(text)
            continue
        names, value = found.group(1), found.group(2)
        if _PER_CALL_VALUE.fullmatch(value) or _identifiers(value) & {"S", "G", "KEYS", "ARGV"}:
            declared.append(f"local {names}\n")
            resets.append(f"  {names} = {value}\n")
        else:
            static.append(text)
    digest = hashlib.sha1("".join((*declared, *static, *resets, body)).encode()).hexdigest()
    function = f"jobbers_{name}_{digest[:16]}"
    rule = OOM_RULES.get(name)
    flags = "'no-writes'" if name in READ_ONLY else "'allow-oom'" if rule is OomRule.ALLOW else ""
    library = (
        f"#!lua name={function}\n"
        "local KEYS, ARGV\nlocal S, G\n"
        + "".join(declared)
        + "".join(static)
        + "local function reset()\n  S, G = ARGV[1], ARGV[2]\n" + "".join(resets) + "end\n"
        + body
        + f"redis.register_function{{function_name = '{function}', flags = {{{flags}}},\n"
        "callback = function(keys, args)\n"
        "  KEYS, ARGV = keys, args\n"
        "  reset()\n"
        + "".join(f"  {line}\n" for line in _HEAD.splitlines()[1:])
        + "  local result = body()\n  flush_effects()\n  return result\nend}\n"
    )
    return function, library


def _function_missing(exc: BaseException) -> bool:
    return isinstance(exc, ResponseError) and "function not found" in str(exc).lower()


def _functions_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says this Redis (or this user) cannot call or load functions: a Redis before
    7, a command renamed away, or an ACL without them."""
    message = str(exc).lower()
    return isinstance(exc, ResponseError) and ("unknown command" in message or message.startswith("noperm"))


class Call(NamedTuple):
    """One script call: script ``name`` in ``space``, given ``keys`` (KEYS[1] in ``space``) and ``args``."""

    name: str
    space: Space
    keys: Sequence[str]
    args: Sequence[Any]


class Scripts:
    """The scripts of one client, each built at its first call, then called by ``FCALL`` (Redis 7
    and later) or ``EVALSHA``.

    Built lazily: a process uses a few of them (a worker: claim, renew, finish, worker_seen), and
    building all of them at start cost a worker recycled every ``WORKER_TTL`` tasks ~0.1 s each time.
    """

    def __init__(
        self, redis: Redis, global_prefix: str, audit_max_events: int = DEFAULT_AUDIT_MAX_EVENTS
    ) -> None:
        self._redis = redis
        self._global = global_prefix
        self._audit_max_events = audit_max_events
        self._scripts: dict[str, AsyncScript] = {}
        #: The scripts with an OOM rule, stated without flags, for a Redis before 7.
        self._unflagged: dict[str, AsyncScript] = {}
        #: Whether Redis takes script flags: assumed until it fails to compile a flagged script.
        self.flags_supported = True
        #: Whether Redis calls functions: assumed until it refuses FCALL or FUNCTION LOAD.
        self.functions_supported = True

    def _script(self, name: str) -> AsyncScript:
        if not self.flags_supported and name in OOM_RULES:
            return self._unflagged_script(name)
        script = self._scripts.get(name)
        if script is None:
            if name not in SCRIPT_NAMES:
                raise KeyError(name)
            source = script_source(name, audit_max_events=self._audit_max_events)
            script = self._scripts[name] = self._redis.register_script(source)
        return script

    def _unflagged_script(self, name: str) -> AsyncScript:
        script = self._unflagged.get(name)
        if script is None:
            source = script_source(name, flags=False, audit_max_events=self._audit_max_events)
            script = self._unflagged[name] = self._redis.register_script(source)
        return script

    async def run(self, name: str, space: Space, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run script ``name`` in ``space``; ``keys`` are the keys it is given (KEYS[1] in ``space``)."""
        return await self._call(name, keys, [space.prefix, self._global, *args])

    def _function(self, name: str) -> str:
        """The name of script ``name``'s function (``function_library`` builds each once)."""
        if name not in SCRIPT_NAMES:
            raise KeyError(name)
        return function_library(name, self._audit_max_events)[0]

    async def _load_function(self, name: str, keys: Sequence[str]) -> bool:
        """Load script ``name``'s library where a call with ``keys`` runs (on a cluster, on the
        master of their slot alone: a shard that is down keeps no other from loading); False when
        Redis will not (out of memory, no permission, no functions): the call then runs the script."""
        library = function_library(name, self._audit_max_events)[1]
        try:
            if isinstance(self._redis, RedisCluster):
                node = self._redis.get_node_from_key(keys[0])
                await self._redis.execute_command("FUNCTION LOAD", "REPLACE", library, target_nodes=node)
            else:
                await self._redis.function_load(library, replace=True)
        except ResponseError as exc:
            if _functions_unavailable(exc):
                self.functions_supported = False
            return False
        return True

    async def _call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if self.functions_supported:
            function = self._function(name)
            try:
                return await self._redis.fcall(function, len(keys), *keys, *args)  # type: ignore[misc,unused-ignore]
            except ResponseError as exc:
                if _functions_unavailable(exc):
                    self.functions_supported = False
                elif not _function_missing(exc):
                    raise
                elif await self._load_function(name, keys):
                    return await self._redis.fcall(function, len(keys), *keys, *args)  # type: ignore[misc,unused-ignore]
        return await self._run_script(name, keys, args)

    async def _run_script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await self._script(name)(keys=keys, args=args)
        except ResponseError as exc:
            # (Whether or not a concurrent first call has found this out already.)
            if not (name in OOM_RULES and _flags_unknown(exc)):
                raise
        self.flags_supported = False  # Redis before 7: its scripts state their OOM rule by a write
        return await self._unflagged_script(name)(keys=keys, args=args)

    async def run_all(self, calls: Sequence[Call], before: Callable[[Any], int] | None = None) -> list[Any]:
        """Run ``calls`` in one pipeline (on a cluster, one batch per node, sent at once), after the
        plain commands ``before(pipe)`` queues (it returns how many; their replies come first).

        A node that lacks a script or function (restarted, or a node new to a cluster) answers so
        without running anything: that call alone is run again, loading it.
        """
        if len(calls) == 1 and before is None:
            call = calls[0]
            return [await self.run(call.name, call.space, call.keys, call.args)]
        pipe = self._redis.pipeline(transaction=False)
        plain = before(pipe) if before else 0
        functions = self.functions_supported
        for call in calls:
            # By name: a cluster pipeline refuses its evalsha() method, not the command itself.
            if functions:
                command = ("FCALL", self._function(call.name))
            else:
                command = ("EVALSHA", self._script(call.name).sha)
            keys, args = call.keys, (call.space.prefix, self._global, *call.args)
            pipe.execute_command(*command, len(keys), *keys, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        for i, reply in enumerate(replies):
            if i >= plain and (
                isinstance(reply, NoScriptError) or _function_missing(reply) or _functions_unavailable(reply)
            ):
                call = calls[i - plain]
                replies[i] = await self.run(call.name, call.space, call.keys, call.args)
            elif isinstance(reply, Exception):
                raise reply
        return replies

    async def run_global(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a script that touches only global keys (``keys``, under the global prefix)."""
        return await self._call(name, keys, [self._global, self._global, *args])
