"""Push a test's own redis-server out of memory (``maxmemory`` reached, ``noeviction``) and back."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError

JUNK = "oom-junk:"


async def push_out_of_memory(
    redis: Redis, headroom: int = 2_000_000, value_size: int = 10_000, margin: int = 256_000
) -> int:
    """Set ``maxmemory`` ``headroom`` bytes above what Redis uses now, write junk keys until Redis
    refuses one for memory, then pin ``maxmemory`` ``margin`` bytes below what it uses (freeing the
    refused write's buffer alone would otherwise let the next command in). Returns the junk count."""
    used = int((await redis.info("memory"))["used_memory"])
    await redis.config_set("maxmemory-policy", "noeviction")
    await redis.config_set("maxmemory", str(used + headroom))
    value = b"x" * value_size
    written = 0
    while True:
        try:
            await redis.set(f"{JUNK}{written}", value)
        except OutOfMemoryError:
            break
        written += 1
    used = int((await redis.info("memory"))["used_memory"])
    await redis.config_set("maxmemory", str(used - margin))
    return written


async def free_memory(redis: Redis, junk: int) -> None:
    """Delete the junk (``DEL`` needs no memory): Redis is ``headroom - margin`` below ``maxmemory``."""
    for start in range(0, junk, 500):
        await redis.delete(*(f"{JUNK}{n}" for n in range(start, min(start + 500, junk))))


async def is_out_of_memory(redis: Redis) -> bool:
    info = await redis.info("memory")
    return int(info["maxmemory"]) > 0 and int(info["used_memory"]) > int(info["maxmemory"])
