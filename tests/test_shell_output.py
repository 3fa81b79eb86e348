"""The pure parts of the ``jobbers`` command: how rows are written, what ``--since`` and ids
accept, and when a burst run is over."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest

from jobbers.models.task import TaskStatus
from jobbers.shell.live import sparkline
from jobbers.shell.output import Format, RowWriter, chosen_format, table_widths, tsv_field
from jobbers.shell.rows import parse_since, task_ids
from jobbers.state.records import new_task_id
from jobbers.state.transitions import Transition, parse_transitions
from jobbers.worker.burst import DUE_HORIZON_SECONDS, Sweep, next_wait

NOW = dt.datetime(2025, 1, 31, 12, 0, tzinfo=dt.UTC)
ID = new_task_id()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_format_is_a_table_on_a_terminal_and_tsv_when_piped() -> None:
    assert chosen_format(None, Terminal()) is Format.TABLE
    assert chosen_format(None, io.StringIO()) is Format.TSV
    assert chosen_format(Format.JSONL, Terminal()) is Format.JSONL


def test_tsv_escapes_what_would_break_a_line_or_a_field() -> None:
    assert tsv_field("a\tb\nc\rd\\e") == "a\\tb\\nc\\rd\\\\e"
    assert tsv_field(None) == ""
    assert tsv_field(True) == "yes"
    assert tsv_field(dt.datetime(2025, 1, 31, 12, 0, 0, 123456, tzinfo=dt.UTC)) == "2025-01-31T12:00:00.123Z"


def test_tsv_rows_have_a_header_and_one_line_each() -> None:
    out = io.StringIO()
    writer = RowWriter(out, Format.TSV, ("id", "error"))
    writer.write({"id": ID, "error": "ValueError: two\nlines"})
    writer.write({"id": ID})
    writer.close()

    assert out.getvalue() == f"id\terror\n{ID}\tValueError: two\\nlines\n{ID}\t\n"


def test_jsonl_rows_are_objects_or_the_line_given() -> None:
    out = io.StringIO()
    writer = RowWriter(out, Format.JSONL, ("id", "n", "at"))
    writer.write({"id": ID, "n": 3, "at": NOW})
    writer.write({"id": ID}, json_line='{"whole": "record"}')
    writer.close()

    first, second = out.getvalue().splitlines()
    assert json.loads(first) == {"id": ID, "n": 3, "at": "2025-01-31T12:00:00.000Z"}
    assert json.loads(second) == {"whole": "record"}


def test_a_table_aligns_columns_and_shows_only_its_table_columns() -> None:
    out = io.StringIO()
    writer = RowWriter(
        out, Format.TABLE, ("id", "n", "hidden", "error"), frozenset({"n"}), width=200,
        table_columns=("id", "n", "error"),
    )
    writer.write({"id": ID, "n": 3, "hidden": "x", "error": "boom"})
    writer.write({"id": ID, "n": 12345, "hidden": "x", "error": None})
    writer.close()

    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["id", "n", "error"]
    assert lines[1] == f"{ID}      3  boom"
    assert lines[2] == f"{ID}  12345"


def test_a_narrow_table_cuts_free_text_first_and_never_the_id() -> None:
    widths = table_widths(("id", "queue", "error"), [[ID, "default", "x" * 200]], 60)
    assert widths[0] == len(ID)
    assert sum(widths) + 4 == 60 and widths[1] == len("default")

    squeezed = table_widths(("id", "queue", "error"), [[ID, "q" * 40, "x" * 200]], 50)
    assert squeezed[0] == len(ID) and squeezed[1] < 40


def test_a_table_keeps_its_widths_after_the_first_rows() -> None:
    out = io.StringIO()
    writer = RowWriter(out, Format.TABLE, ("id", "name"), width=100, widths=(26, 6))
    writer.write({"id": ID, "name": "a-much-longer-name"})
    writer.close()

    assert out.getvalue().splitlines()[1] == f"{ID}  a-muc…"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - dt.timedelta(seconds=90)),
        ("15m", NOW - dt.timedelta(minutes=15)),
        ("2h", NOW - dt.timedelta(hours=2)),
        ("1.5d", NOW - dt.timedelta(hours=36)),
        ("1w", NOW - dt.timedelta(weeks=1)),
        ("2025-01-30", dt.datetime(2025, 1, 30, tzinfo=dt.UTC)),
        ("2025-01-30T10:00:00Z", dt.datetime(2025, 1, 30, 10, tzinfo=dt.UTC)),
        ("2025-01-30T10:00:00+02:00", dt.datetime(2025, 1, 30, 8, tzinfo=dt.UTC)),
        ("1738238400", dt.datetime(2025, 1, 30, 12, tzinfo=dt.UTC)),
    ],
)
def test_since_takes_a_duration_a_time_or_epoch_seconds(text: str, expected: dt.datetime) -> None:
    assert parse_since(text, NOW) == expected


def test_since_refuses_anything_else_and_says_what_it_takes() -> None:
    with pytest.raises(ValueError, match="duration back from now"):
        parse_since("yesterday", NOW)


def test_ids_skip_the_header_word_and_are_upper_cased_once_each() -> None:
    assert task_ids(["id", ID.lower(), ID]) == [ID]
    with pytest.raises(ValueError, match="'nope' is not a task id"):
        task_ids([ID, "nope"])


def test_published_transitions_parse_three_words_each_and_skip_garbage() -> None:
    changes = parse_transitions(f"1700000000123 {ID} submitted started {ID} started bogus X")

    assert changes == [Transition(1700000000123, ID, TaskStatus.SUBMITTED, TaskStatus.STARTED)]
    assert parse_transitions("") == [] and parse_transitions("not-a-time a b c") == []


def test_the_sparkline_scales_to_the_largest_minute() -> None:
    assert sparkline([0, 1, 8]) == " ▁█"
    assert sparkline([0, 0]) == "  "


def _sweep(promoted: int = 0, recovered: int = 0, ready: int = 0, due_in_ms: int | None = None) -> Sweep:
    return Sweep(promoted=promoted, recovered=recovered, ready=ready, next_due_in_ms=due_in_ms)


def test_a_burst_run_is_over_when_nothing_is_ready_or_due_soon() -> None:
    assert next_wait(_sweep(), 0.25) is None
    assert next_wait(_sweep(due_in_ms=int(DUE_HORIZON_SECONDS * 1000) + 1), 0.25) is None


def test_a_burst_run_goes_on_while_work_is_ready_just_came_back_or_is_due_soon() -> None:
    assert next_wait(_sweep(promoted=2), 0.25) == 0.0
    assert next_wait(_sweep(recovered=1), 0.25) == 0.0
    assert next_wait(_sweep(ready=3), 0.25) == 0.25  # held back by a limit
    assert next_wait(_sweep(due_in_ms=1500), 0.25) == 1.5
    assert next_wait(_sweep(due_in_ms=-20), 0.25) == 0.001  # due already: promote it next time
