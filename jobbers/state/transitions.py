"""Following task transitions live: every status change, as the state scripts publish it.

Every status change goes through ``move_status`` in ``lua/_common.lua``, which collects it; when
the script ends, one message on the transitions channel carries all of that call's changes as
``"<ms> <id> <old> <new> <id> <old> <new> ..."`` (the Redis time of the call, then three words per
change: ids and status names hold no spaces). Publishing costs one PUBLISH per script call.

This is pub/sub, so it is a live view, not a log: a follower sees what happens while it is
subscribed, and changes made while it is disconnected (or that it cannot keep up with) are not
replayed. The task records stay the truth; ``TransitionFeed`` counts what it had to drop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from jobbers.models.task import TaskStatus
from jobbers.state.connection import SignalListener
from jobbers.state.store import TaskRef, TaskStore

#: Messages a feed buffers before it drops (and counts) new ones: a follower too slow to keep up
#: loses transitions rather than memory.
FEED_BACKLOG = 10_000
#: Task identities (queue, name) a feed remembers, so a task seen again costs no look-up.
KNOWN_TASKS = 50_000

_STATUSES = {s.value: s for s in TaskStatus}


@dataclass(frozen=True)
class Transition:
    """One status change of one task, at ``at_ms`` (Redis time)."""

    at_ms: int
    task_id: str
    old: TaskStatus
    new: TaskStatus


def parse_transitions(message: str) -> list[Transition]:
    """The transitions of one published message; words that do not parse are skipped."""
    words = message.split()
    if not words:
        return []
    try:
        at_ms = int(words[0])
    except ValueError:
        return []
    out = []
    for i in range(1, len(words) - 2, 3):
        old, new = _STATUSES.get(words[i + 1]), _STATUSES.get(words[i + 2])
        if old is not None and new is not None:
            out.append(Transition(at_ms, words[i], old, new))
    return out


class TransitionFeed:
    """Transitions as they are published, in batches (one per script call), from entering the
    ``async with`` block on. ``subscribed`` is set once the subscription is in place (and again
    after each reconnect); ``dropped`` counts messages lost because the reader fell behind."""

    def __init__(self, store: TaskStore, backlog: int = FEED_BACKLOG) -> None:
        self.store = store
        self.subscribed = asyncio.Event()
        self.reconnects = 0
        self.dropped = 0
        self._messages: asyncio.Queue[str] = asyncio.Queue(backlog)
        self._listener = SignalListener(
            store.redis, {store.keys.transitions_channel: self._received}, self._on_subscribed
        )
        self._task: asyncio.Task[None] | None = None
        self._refs: OrderedDict[str, TaskRef] = OrderedDict()

    async def __aenter__(self) -> TransitionFeed:
        self._task = asyncio.create_task(self._listener.run(), name="transitions")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._listener.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _on_subscribed(self) -> None:
        if self.subscribed.is_set():
            self.reconnects += 1
        self.subscribed.set()

    def _received(self, message: str) -> None:
        try:
            self._messages.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1

    async def next_batch(self) -> list[Transition]:
        """The transitions of the next message (waits for one)."""
        while True:
            batch = parse_transitions(await self._messages.get())
            if batch:
                return batch

    async def identify(self, task_ids: Sequence[str]) -> dict[str, TaskRef]:
        """Queue and name of each task (of those whose record still exists), remembered for the
        next batches: 1 round trip for the ones not seen before, none when all were."""
        unknown = [i for i in dict.fromkeys(task_ids) if i not in self._refs]
        if unknown:
            for task_id, ref in (await self.store.task_refs(unknown)).items():
                self._refs[task_id] = ref
            while len(self._refs) > KNOWN_TASKS:
                self._refs.popitem(last=False)
        return {i: self._refs[i] for i in task_ids if i in self._refs}
