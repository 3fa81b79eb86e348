"""Task module for the benchmarks."""

from __future__ import annotations

import asyncio
import time

from jobbers.registry import register_task


@register_task(name="noop")
async def noop() -> None:
    return None


@register_task(name="latency_probe")
async def latency_probe(sent: float) -> float:
    """Seconds from the client's submit call to this task starting (same machine, same clock)."""
    return time.time() - sent


@register_task(name="sleep_ms")
async def sleep_ms(ms: float = 10.0) -> None:
    """A task that waits ``ms`` milliseconds (benchmarks/recycle.py)."""
    await asyncio.sleep(ms / 1000)
