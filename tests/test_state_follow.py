"""What the state layer gives the operator's shell: every status change published per script call,
walks that follow the listings' cursors one page at a time, and listings that seek by time."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from jobbers.models.outcomes import RetryKind
from jobbers.models.queue_config import QueueConfig
from jobbers.models.task import LISTED_STATUSES, TaskStatus
from jobbers.state.queries import TaskFilter, TaskPage, TaskQueries
from jobbers.state.store import NewTask, Outcome, TaskStore
from jobbers.state.transitions import TransitionFeed
from jobbers.state.walks import walk_by_status, walk_dead_letters
from tests.e2e import E2E
from tests.helpers import ids_by_status
from tests.processes import ROOT

S = TaskStatus
QUEUE = [QueueConfig(name="default")]


async def _next(feed: TransitionFeed) -> list[tuple[str, S, S]]:
    batch = await asyncio.wait_for(feed.next_batch(), 10)
    assert len({c.at_ms for c in batch}) == 1  # one message per script call, at its Redis time
    return [(c.task_id, c.old, c.new) for c in batch]


async def test_every_status_change_is_published_once_per_script_call(store: TaskStore) -> None:
    async with TransitionFeed(store) as feed:
        await asyncio.wait_for(feed.subscribed.wait(), 10)
        a, b, c = (o.id for o in await store.submit_many([NewTask(name="t") for _ in range(3)]))
        assert await _next(feed) == [(a, S.UNSUBMITTED, S.SUBMITTED), (b, S.UNSUBMITTED, S.SUBMITTED),
                                     (c, S.UNSUBMITTED, S.SUBMITTED)]
        claimed = (await store.claim("w", 30, 2, QUEUE)).tasks
        assert await _next(feed) == [(a, S.SUBMITTED, S.STARTED), (b, S.SUBMITTED, S.STARTED)]
        await store.finish([
            Outcome(claimed[0].id, claimed[0].token, TaskStatus.COMPLETED),
            Outcome(claimed[1].id, claimed[1].token, RetryKind.RETRY, retry_attempt=1, delay_ms=1),
        ])
        assert await _next(feed) == [(a, S.STARTED, S.COMPLETED), (b, S.STARTED, S.SCHEDULED)]
        await store.cancel([c])
        assert await _next(feed) == [(c, S.SUBMITTED, S.CANCELLED)]
        await asyncio.sleep(0.01)
        await store.promote_due("default", 10)
        assert await _next(feed) == [(b, S.SCHEDULED, S.SUBMITTED)]
        await store.cancel([a])  # refused (completed): no change, nothing published
        await store.submit(NewTask(name="t", id=a))  # an existing id: nothing changes either
        (d,) = [o.id for o in await store.submit_many([NewTask(name="t")])]
        assert await _next(feed) == [(d, S.UNSUBMITTED, S.SUBMITTED)]
        assert feed.dropped == 0


async def test_a_feed_that_falls_behind_drops_and_counts_rather_than_grows(store: TaskStore) -> None:
    async with TransitionFeed(store, backlog=2) as feed:
        await asyncio.wait_for(feed.subscribed.wait(), 10)
        for _ in range(5):
            await store.submit(NewTask(name="t"))
        await asyncio.sleep(0.3)

        assert feed.dropped == 3
        assert len(await feed.next_batch()) == 1


async def test_a_feed_names_each_task_with_one_look_up(store: TaskStore) -> None:
    (task_id,) = [o.id for o in await store.submit_many([NewTask(name="report", queue="q")])]
    async with TransitionFeed(store) as feed:
        first = await feed.identify([task_id, task_id])
        await store.redis.delete(store.keys.space("q").task(task_id))
        again = await feed.identify([task_id])  # remembered: no second look-up

    assert first[task_id].queue == "q" and first[task_id].name == "report" and again == first


class CountingQueries(TaskQueries):
    """The listings, recording the size of every page they hand out."""

    pages: list[int]

    async def list_by_status(self, *args: object, **kwargs: object) -> TaskPage:
        page = await super().list_by_status(*args, **kwargs)  # type: ignore[arg-type]
        self.pages = [*getattr(self, "pages", []), len(page.items)]
        return page


async def test_a_walk_holds_one_page_at_a_time_and_lists_each_task_once(store: TaskStore) -> None:
    ids = [o.id for o in await store.submit_many([NewTask(name="t") for _ in range(1050)])]
    queries = CountingQueries(store)

    walked = [item.task.id async for item in walk_by_status(queries, LISTED_STATUSES, TaskFilter(), 100)]

    assert walked == await ids_by_status(store, S.SUBMITTED) and sorted(walked) == sorted(ids)
    assert max(queries.pages) == 100 and len(queries.pages) == 11


async def test_a_filtered_walk_follows_pages_cut_short_by_the_scan_budget(store: TaskStore) -> None:
    tasks = [NewTask(name="wanted" if i % 700 == 0 else "other") for i in range(6000)]
    wanted = [o.id for t, o in zip(tasks, await store.submit_many(tasks), strict=True) if t.name == "wanted"]

    walk = walk_by_status(TaskQueries(store), [S.SUBMITTED], TaskFilter(task_name="wanted"))
    walked = [i.task.id async for i in walk]

    in_index_order = [i for i in await ids_by_status(store, S.SUBMITTED) if i in set(wanted)]
    assert walked == in_index_order and sorted(walked) == sorted(wanted) and len(wanted) == 9


async def test_since_seeks_past_older_entries_and_keeps_the_cursor_order(store: TaskStore) -> None:
    old = [o.id for o in await store.submit_many([NewTask(name="t") for _ in range(3)])]
    await asyncio.sleep(0.01)
    boundary = await store.redis_time_ms()
    await asyncio.sleep(0.01)
    new = [o.id for o in await store.submit_many([NewTask(name="t") for _ in range(5)])]
    queries = TaskQueries(store)
    since = TaskFilter(since_ms=boundary)

    first = await queries.list_by_status([S.SUBMITTED], since, 2, None)
    rest = await queries.list_by_status([S.SUBMITTED], since, 10, first.next_cursor)
    everything = [i.task.id async for i in walk_by_status(queries, [S.SUBMITTED], TaskFilter(since_ms=0))]

    assert [i.task.id for i in first.items + rest.items] == new and rest.next_cursor is None
    assert everything == old + new


async def test_dead_letter_walks_hand_out_pages(store: TaskStore) -> None:
    ids = [o.id for o in await store.submit_many([NewTask(name="t") for _ in range(5)])]
    claimed = (await store.claim("w", 30, 5, QUEUE)).tasks
    await store.finish([Outcome(t.id, t.token, S.FAILED, error_type="E", dead_letter=True) for t in claimed])

    pages = [page async for page in walk_dead_letters(TaskQueries(store), TaskFilter(), 2)]

    assert [len(p.items) for p in pages] == [2, 2, 1]
    assert [i.task.id for p in pages for i in p.items] == ids


#: Runs ``jobbers`` in this interpreter, then reports its peak RSS since exec (VmHWM; the rusage
#: a parent sees also counts the image it forked from).
_MEASURED = """
import sys
from pathlib import Path
from jobbers.shell import main
code = main(sys.argv[1:])
peak = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
print(int(peak.split()[1]) / 1024, file=sys.stderr)
sys.exit(code)
"""


async def test_exporting_many_tasks_takes_the_memory_of_exporting_none(e2e: E2E) -> None:
    """``jobbers export`` of 50,000 tasks peaks within a few MB of an export of nothing (holding
    them all would take ~150 MB more)."""
    for _ in range(10):
        await e2e.store.submit_many([NewTask(name="noop", params={"pad": "x" * 200}) for _ in range(5000)])

    def export(*args: str) -> tuple[float, int]:
        result = subprocess.run(
            [sys.executable, "-c", _MEASURED, "export", *args],
            env={**e2e.platform.env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return float(result.stderr.split()[-1]), result.stdout.count("\n")

    baseline, none = export("--status", "dropped")
    peak, every = export()

    assert (none, every) == (0, 50_000)
    assert peak - baseline < 15, (baseline, peak)
