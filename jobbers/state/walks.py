"""Every matching task, page after page: the listings of ``queries`` followed to their end.

A walk holds one page at a time (``page_size`` tasks) and resumes each page after the last
(score, id) it returned, so listing a million tasks costs the memory of one page, and a task
that leaves an index meanwhile shifts nothing. A page cut short by the scan budget (filters
that match little) is followed like any other. Used by the ``jobbers`` command's listings and
its ``export``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from jobbers.models.task import TaskStatus
from jobbers.state.queries import SCAN_CHUNK, Listed, TaskFilter, TaskPage, TaskQueries

#: Tasks per page of a walk (what it holds in memory): one less than the listings' scan chunk, so
#: an unfiltered page, with the one entry that tells whether another follows, is one round trip.
WALK_PAGE = SCAN_CHUNK - 1


async def walk_by_status(
    queries: TaskQueries,
    statuses: Sequence[TaskStatus],
    filters: TaskFilter,
    page_size: int = WALK_PAGE,
) -> AsyncIterator[Listed]:
    """Every task in ``statuses`` matching ``filters``, in the order of ``list_by_status``."""
    cursor: str | None = None
    while True:
        page = await queries.list_by_status(statuses, filters, page_size, cursor)
        for item in page.items:
            yield item
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


async def walk_dead_letters(
    queries: TaskQueries, filters: TaskFilter, page_size: int = WALK_PAGE
) -> AsyncIterator[TaskPage]:
    """Every dead letter matching ``filters``, oldest first, a page at a time.

    Pages (not single tasks) so a caller can act on each page in one round trip (resubmit or
    remove it) before reading the next: the next page resumes after the last entry returned, so
    entries that leave the DLQ meanwhile are neither skipped nor repeated.
    """
    cursor: str | None = None
    while True:
        page = await queries.list_dead_letters(filters, page_size, cursor)
        if page.items:
            yield page
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
