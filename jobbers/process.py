"""What every long-running process (worker, scheduler) does around its main loop: stop on
SIGTERM/SIGINT, and stop its background tasks without letting one hold up the exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

log = logging.getLogger(__name__)


def stop_on_signals(request_stop: Callable[[], None]) -> None:
    """Call ``request_stop`` on SIGTERM and SIGINT (where the event loop can handle signals)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, request_stop)


async def settle(tasks: list[asyncio.Task[None]], seconds: float = 2.0) -> None:
    """Cancel background tasks and wait for them to finish, but never let one hold up the exit."""
    for t in tasks:
        t.cancel()
    _done, stuck = await asyncio.wait(tasks, timeout=seconds)
    for t in stuck:
        log.warning("background task %s did not stop within %.1fs", t.get_name(), seconds)
