"""Pure decisions shared by the processes, unit-tested without Redis: the reconnect back-off, the
scheduler's sleep, the cleaner's cut-offs, and a submission's fingerprint."""

from __future__ import annotations

import datetime as dt

from jobbers.cleaner.decisions import NO_UPPER_BOUND_MS, CleanerOptions, cutoffs, submission_bounds
from jobbers.models.outcomes import CancelKind
from jobbers.scheduler.decisions import seconds_until_next_pass
from jobbers.state.reconnect import Backoff
from jobbers.state.records import Promotion
from jobbers.task_builder import build_new_task, bulk_request_key, request_fingerprint, schedule_of


def test_backoff_doubles_to_its_cap_and_starts_over_after_a_success() -> None:
    backoff = Backoff(first=0.05, cap=0.3)
    assert [backoff.next_delay() for _ in range(5)] == [0.05, 0.1, 0.2, 0.3, 0.3]
    backoff.succeeded()
    assert backoff.next_delay() == 0.05


def test_scheduler_sleeps_until_the_earliest_due_task_within_its_poll_interval() -> None:
    promotions = [Promotion(0, 10_400, 10_000, 0), Promotion(1, 10_200, 10_000, 3), Promotion(0, None, 10_000, 0)]
    assert seconds_until_next_pass(5.0, 10, promotions) == 0.2
    assert seconds_until_next_pass(0.1, 10, promotions) == 0.1
    assert seconds_until_next_pass(5.0, 10, [Promotion(0, 9_000, 10_000, 0)]) == 0.0  # overdue already


def test_scheduler_does_not_sleep_after_a_full_batch() -> None:
    assert seconds_until_next_pass(5.0, 2, [Promotion(0, 20_000, 10_000, 0), Promotion(2, None, 10_000, 5)]) == 0.0


def test_cleaner_ages_become_cut_offs_and_absent_ones_skip_their_step() -> None:
    cut = cutoffs(CleanerOptions(completed_task_age=60, dlq_age=1.5), now_ms=100_000)
    assert (cut.terminal_before_ms, cut.dead_letters_before_ms, cut.rate_entries_before_ms) == (40_000, 98_500, None)


def test_cleaner_submission_bounds_default_to_everything() -> None:
    assert submission_bounds(CleanerOptions()) == (0, NO_UPPER_BOUND_MS)
    assert submission_bounds(CleanerOptions(min_queue_age=10, max_queue_age=20.5)) == (10_000, 20_500)


def test_accepted_cancellations_are_the_cancelled_and_requested_ones() -> None:
    assert {r for r in CancelKind if r.accepted} == {CancelKind.CANCELLED, CancelKind.REQUESTED}


def test_a_fingerprint_ignores_params_key_order_but_not_their_values_or_schedule() -> None:
    base = request_fingerprint("t", 1, "q", {"a": 1, "b": [1, 2]}, "")
    assert request_fingerprint("t", 1, "q", {"b": [1, 2], "a": 1}, "") == base
    for other in (
        request_fingerprint("t", 1, "q", {"a": 2, "b": [1, 2]}, ""),
        request_fingerprint("t", 2, "q", {"a": 1, "b": [1, 2]}, ""),
        request_fingerprint("t", 1, "r", {"a": 1, "b": [1, 2]}, ""),
        request_fingerprint("u", 1, "q", {"a": 1, "b": [1, 2]}, ""),
        request_fingerprint("t", 1, "q", {"a": 1, "b": [1, 2]}, "delay=60"),
    ):
        assert other != base


def test_the_schedule_is_fingerprinted_as_asked() -> None:
    at = dt.datetime(2030, 1, 1, 12, 0)
    assert schedule_of(delay=60) == "delay=60"
    assert schedule_of(run_at=at) == schedule_of(run_at=at.replace(tzinfo=dt.UTC)) == "run_at=2030-01-01T12:00:00+00:00"
    assert schedule_of() == ""


def test_only_a_keyed_submission_is_fingerprinted() -> None:
    assert build_new_task(None, "t", {}).fingerprint == ""
    keyed = build_new_task(None, "t", {"a": 1}, idempotency_key="k")
    assert keyed.fingerprint == request_fingerprint("t", 1, "default", {"a": 1}, "")
    assert keyed.max_stalls is None and keyed.dead_letter is None  # unknown here: the workers' config decides


def test_a_bulk_request_key_covers_every_item_in_order() -> None:
    items = [build_new_task(None, "t", {"a": i}, idempotency_key=f"k:{i}") for i in range(3)]
    key = bulk_request_key(items, "k")
    assert key is not None and key.key == "k"
    assert bulk_request_key(items[::-1], "k") != key and bulk_request_key(items[:2], "k") != key
    assert bulk_request_key(items, None) is None
