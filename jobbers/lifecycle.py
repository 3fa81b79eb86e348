"""Small helpers shared by the long-running processes (worker, scheduler, manager)."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


async def settle(tasks: list[asyncio.Task[None]], seconds: float = 2.0) -> None:
    """Wait for cancelled background tasks to finish, but never let one hold up the exit."""
    for t in tasks:
        t.cancel()
    _done, stuck = await asyncio.wait(tasks, timeout=seconds)
    for t in stuck:
        log.warning("background task %s did not stop within %.1fs", t.get_name(), seconds)
