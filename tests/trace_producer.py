"""A traced producer process for tests/test_telemetry.py: submits the workload through
``JobbersClient`` (each submit in a ``task.submit`` span), cancels one scheduled task, exports its
spans and metrics, and prints the ids it made as JSON.

    python -m tests.trace_producer   (configured by the usual REDIS_*, SQL_PATH and OTEL_* variables)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from jobbers.client import JobbersClient
from jobbers.telemetry import setup_telemetry


async def produce() -> dict[str, object]:
    client = JobbersClient.from_settings()
    try:
        noops = [(await client.submit("noop")).id for _ in range(3)]
        flaky = (await client.submit("flaky", correlation_id="session-flaky")).id
        later = await client.submit("nap", run_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
        await client.cancel(later.id)
    finally:
        await client.close()
    return {"noop": noops, "flaky": flaky, "cancelled": later.id}


def main() -> None:
    telemetry = setup_telemetry("test-producer")
    try:
        print(json.dumps(asyncio.run(produce())))
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
