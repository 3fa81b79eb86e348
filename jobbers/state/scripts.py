"""The Lua scripts: their generated preamble, loading, and the one way they are called.

Every script is ``preamble + lua/_common.lua + lua/<name>.lua``. The preamble is generated from
Python, so nothing the scripts share is spelled twice:

- the call's key space ``S`` (``ARGV[1]``) and the global prefix ``G`` (``ARGV[2]``), with a check
  that ``KEYS[1]`` lies in ``S``, and the key helpers ``K_*`` / channels ``C_*`` (``keys.py``);
- every status (``SUBMITTED`` ...), the sets ``TERMINAL``, ``CANCELLABLE``, ``DEAD_LETTER`` and the
  transition table ``ALLOWED`` (``models.task``); the outcome names (``CANCEL_*``, ``RESUBMIT_*``,
  ``SUBMIT_*``) and retry kinds (``RETRY``, ``REQUEUE``) (``models.outcomes``);
- the rows' positions and helpers (``task_schema.lua_row_helpers``).

The script body runs inside a function, and the effects it collected (wake-ups, the schedule
signal, throughput counts; see ``_common.lua``) are flushed after it returns, so no script can
forget to publish what it made ready.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

from jobbers.models.outcomes import CancelKind, ResubmitKind, RetryKind, SubmitKind
from jobbers.models.task import (
    ALLOWED_TRANSITIONS,
    CANCELLABLE_STATUSES,
    DEAD_LETTER_STATUSES,
    TERMINAL_STATUSES,
    TaskStatus,
)
from jobbers.state.keys import Space, lua_key_helpers
from jobbers.state.task_schema import lua_row_helpers

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
)

#: Enums whose values the scripts use, and the prefix of their generated Lua names.
LUA_ENUMS: tuple[tuple[str, type[StrEnum]], ...] = (
    ("", TaskStatus),
    ("", RetryKind),
    ("SUBMIT_", SubmitKind),
    ("CANCEL_", CancelKind),
    ("RESUBMIT_", ResubmitKind),
)


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
    rows = ", ".join(
        f"{old.value} = {{" + ", ".join(f"{new.value} = true" for new in sorted(allowed)) + "}"
        for old, allowed in ALLOWED_TRANSITIONS.items()
    )
    lines.append(f"local ALLOWED = {{{rows}}}")
    return "\n".join(lines) + "\n"


_HEAD = """local S, G = ARGV[1], ARGV[2]
if string.sub(KEYS[1], 1, #S) ~= S then
  return redis.error_reply('jobbers: KEYS[1] ' .. KEYS[1] .. ' is outside the key space ' .. S)
end
"""


def lua_preamble() -> str:
    """Everything generated that every script starts with."""
    return _HEAD + lua_key_helpers() + lua_model_constants() + lua_row_helpers()


def script_source(name: str) -> str:
    """The full source of script ``name``: preamble, shared helpers, its body, the flush of effects."""
    lua = resources.files("jobbers.state") / "lua"
    common = (lua / "_common.lua").read_text()
    body = (lua / f"{name}.lua").read_text()
    return (
        lua_preamble()
        + common
        + "local function body()\n"
        + body
        + "\nend\nlocal result = body()\nflush_effects()\nreturn result\n"
    )


class Scripts:
    """The scripts of one client, registered once and called by EVALSHA."""

    def __init__(self, redis: Redis, global_prefix: str) -> None:
        self._global = global_prefix
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(script_source(name)) for name in SCRIPT_NAMES
        }

    async def run(
        self,
        name: str,
        space: Space,
        keys: Sequence[str],
        args: Sequence[Any],
        client: Pipeline | None = None,
    ) -> Any:
        """Run script ``name`` in ``space``; ``keys`` are the keys it is given (KEYS[1] in ``space``).
        With ``client`` (a pipeline) the call is queued on it instead."""
        return await self._scripts[name](keys=keys, args=[space.prefix, self._global, *args], client=client)

    async def run_global(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a script that touches only global keys (``keys``, under the global prefix)."""
        return await self._scripts[name](keys=keys, args=[self._global, self._global, *args])
