"""Task module for the benchmarks."""

from __future__ import annotations

import time

from jobbers.registry import register_task


@register_task(name="noop")
async def noop() -> None:
    return None


@register_task(name="latency_probe")
async def latency_probe(sent: float) -> float:
    """Seconds from the client's submit call to this task starting (same machine, same clock)."""
    return time.time() - sent
