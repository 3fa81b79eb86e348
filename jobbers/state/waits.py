"""Waiting for a task's next transition or its end without polling.

The state scripts publish every status change on the transitions channel (``transitions``). One
``TaskWaits`` per process subscribes to it once, on first use, and wakes whoever waits on a task
named in a message; the waiter then reads the task's record once. Pub/sub only makes this fast:
the record stays the truth, so a waiter also re-reads it every ``recheck`` seconds and after every
re-subscription (a Redis restart, a failover; reads that fail meanwhile are retried until the
wait's end), and a lost message costs latency, never a wrong answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from jobbers.models.task import Task, TaskStatus
from jobbers.state.connection import SignalListener
from jobbers.state.reconnect import TRANSIENT_REDIS_ERRORS, Backoff
from jobbers.state.store import TaskStore

#: Seconds between re-reads of a waited-for record when no message names it.
RECHECK_SECONDS = 1.0
#: Seconds to wait for the subscription before falling back to re-reads alone.
SUBSCRIBE_SECONDS = 1.0

_TERMINAL = frozenset(s.value for s in TaskStatus if s.is_terminal)


class _Waiter:
    __slots__ = ("changed", "terminal_only")

    def __init__(self, terminal_only: bool) -> None:
        self.changed = asyncio.Event()
        self.terminal_only = terminal_only


class TaskWaits:
    """Wakes the coroutines of one event loop that wait on tasks, from the transitions channel."""

    def __init__(self, store: TaskStore, recheck: float = RECHECK_SECONDS) -> None:
        self.store = store
        self.recheck = recheck
        self._waiting: dict[str, set[_Waiter]] = {}
        self._subscribed = asyncio.Event()
        self._listener: SignalListener | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def close(self) -> None:
        """Stop listening (waits in progress fall back to re-reads)."""
        task, self._task = self._task, None
        if self._listener is not None:
            self._listener.stop()
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _subscribe(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            # A client used from a new event loop (asyncio.run twice) listens again from it.
            self._loop = loop
            self._subscribed = asyncio.Event()
            self._listener = SignalListener(
                self.store.redis, {self.store.keys.transitions_channel: self._received}, self._on_subscribed
            )
            self._task = loop.create_task(self._listener.run(), name="task-waits")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_SECONDS)

    def _on_subscribed(self) -> None:
        # After a re-subscription every waiter re-reads: messages may have been missed meanwhile.
        self._subscribed.set()
        for waiters in self._waiting.values():
            for waiter in waiters:
                waiter.changed.set()

    def _received(self, message: str) -> None:
        if not self._waiting:
            return
        words = message.split()
        for i in range(1, len(words) - 2, 3):
            waiters = self._waiting.get(words[i])
            if waiters:
                terminal = words[i + 2] in _TERMINAL
                for waiter in waiters:
                    if terminal or not waiter.terminal_only:
                        waiter.changed.set()

    @contextlib.asynccontextmanager
    async def _watch(self, task_id: str, terminal_only: bool) -> AsyncIterator[_Waiter]:
        await self._subscribe()
        waiter = _Waiter(terminal_only)
        self._waiting.setdefault(task_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            waiters = self._waiting.get(task_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiting[task_id]

    async def _changed(self, waiter: _Waiter, deadline: float) -> bool:
        """Wait for a message naming the task, a re-read being due, or ``deadline``; False once
        the deadline has passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.changed.wait(), min(self.recheck, remaining))
        return True

    async def _read(self, task_id: str, deadline: float) -> Task | None:
        """The task's record, read again while Redis is unreachable (a restart, a failover) until
        ``deadline``, when the last error is raised."""
        backoff = Backoff()
        while True:
            try:
                return await self.store.get_task(task_id)
            except TRANSIENT_REDIS_ERRORS:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
                await asyncio.sleep(min(backoff.next_delay(), remaining))

    async def until_terminal(self, task_id: str, seconds: float) -> Task | None:
        """The task's record once it is terminal, or as it is when ``seconds`` have passed
        (None: no such task)."""
        deadline = time.monotonic() + seconds
        async with self._watch(task_id, terminal_only=True) as waiter:
            while True:
                # Cleared before the read: a change during the read wakes the next wait.
                waiter.changed.clear()
                task = await self._read(task_id, deadline)
                if task is None or task.status.is_terminal or not await self._changed(waiter, deadline):
                    return task

    async def follow(self, task_id: str, seconds: float) -> AsyncIterator[Task]:
        """The task's record now, then again each time it changes (its status at once, a
        heartbeat or progress at the next re-read), until it is terminal or ``seconds`` have
        passed; nothing when there is no such task."""
        deadline = time.monotonic() + seconds
        last: Task | None = None
        async with self._watch(task_id, terminal_only=False) as waiter:
            while True:
                waiter.changed.clear()
                task = await self._read(task_id, deadline)
                if task is None:
                    return
                if task != last:
                    last = task
                    yield task
                if task.status.is_terminal or not await self._changed(waiter, deadline):
                    return
