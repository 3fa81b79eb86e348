"""How ``jobbers`` writes rows: a table on a terminal; TSV or JSON lines when piped.

- ``table``: aligned columns sized from the first rows (later rows never move them: a long
  value is cut with ``…``), the last column cut to the terminal's width.
- ``tsv``: a header line, then one line per row, fields separated by tabs; a backslash, tab,
  newline or carriage return inside a value is written ``\\\\``, ``\\t``, ``\\n``, ``\\r`` (so
  every row is one line and ``cut``/``awk`` see the right fields); an absent value is empty.
- ``jsonl``: one JSON object per line (for tasks: the record exactly as ``/task-status`` shows it).

Rows are written as they come, so a listing of a million rows holds one page in memory. Pure
apart from the stream written to: unit-tested without Redis.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, TextIO

#: Rows a table waits for before it fixes its column widths.
TABLE_SIZING_ROWS = 50
#: The narrowest a table column is cut to.
MIN_COLUMN = 4
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


class Format(StrEnum):
    """``--format``: how rows are written."""

    TABLE = "table"
    TSV = "tsv"
    JSONL = "jsonl"


def chosen_format(requested: Format | None, stream: TextIO) -> Format:
    """``requested``, else a table on a terminal and TSV anywhere else (a pipe, a file)."""
    if requested is not None:
        return requested
    return Format.TABLE if stream.isatty() else Format.TSV


def iso_time(value: dt.datetime) -> str:
    """``2025-01-31T12:00:00.123Z``: UTC, milliseconds."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def cell_text(value: Any) -> str:
    """A value as one table or TSV cell (before TSV escaping)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return iso_time(value)
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, list | tuple):
        return ",".join(cell_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def table_cell(value: Any) -> str:
    """A value as a table cell: as in TSV, but times to the second (``2025-01-31 12:00:00``, UTC)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return cell_text(value)


def json_value(value: Any) -> Any:
    """A row value as JSON (times as ISO strings)."""
    if isinstance(value, dt.datetime):
        return iso_time(value)
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def tsv_field(value: Any) -> str:
    """One TSV field: the cell text with backslash, tab, newline and carriage return escaped."""
    return cell_text(value).translate(_TSV_ESCAPES)


def cut(text: str, width: int) -> str:
    """``text`` on one line, at most ``width`` characters (``…`` marks a cut)."""
    text = " ".join(text.split()) if ("\n" in text or "\t" in text or "\r" in text) else text
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


class RowWriter:
    """Writes rows of ``columns`` to ``out`` in ``fmt``, as they come; call ``close()`` at the end.

    ``numeric`` columns are right-aligned in a table; ``widths`` fixes a table's column widths at
    once instead of sizing them from the first rows; ``table_columns`` are the ones a table shows
    (the main ones; TSV and JSON lines carry them all). A row may come with its own JSON line
    (``write(row, json_line=...)``), written as is under ``jsonl``.
    """

    def __init__(
        self,
        out: TextIO,
        fmt: Format,
        columns: Sequence[str],
        numeric: frozenset[str] = frozenset(),
        width: int | None = None,
        widths: Sequence[int] | None = None,
        table_columns: Sequence[str] | None = None,
    ) -> None:
        self.out = out
        self.fmt = fmt
        self.columns = list(table_columns if fmt is Format.TABLE and table_columns else columns)
        self.numeric = numeric
        self.width = width if width is not None else shutil.get_terminal_size().columns
        self.rows = 0
        self._pending: list[list[str]] = []
        self._widths: list[int] | None = None
        if fmt is Format.TSV:
            out.write("\t".join(self.columns) + "\n")
        elif fmt is Format.TABLE and widths is not None:
            # Fixed widths (a live feed cannot wait for rows to size its columns).
            self._widths = [max(w, len(c)) for w, c in zip(widths, self.columns, strict=True)]
            self._write_cells(self.columns)

    def write(self, row: Mapping[str, Any], json_line: str | None = None) -> None:
        """Write one row (a value per column; missing columns are empty)."""
        self.rows += 1
        if self.fmt is Format.JSONL:
            line = json_line if json_line is not None else _json_row(self.columns, row)
            self.out.write(line + "\n")
        elif self.fmt is Format.TSV:
            self.out.write("\t".join(tsv_field(row.get(c)) for c in self.columns) + "\n")
        else:
            cells = [table_cell(row.get(c)) for c in self.columns]
            if self._widths is None:
                self._pending.append(cells)
                if len(self._pending) >= TABLE_SIZING_ROWS:
                    self._flush_pending()
            else:
                self._write_cells(cells)

    def close(self) -> None:
        """Write what a table still holds (its first rows, or just its header)."""
        if self.fmt is Format.TABLE:
            self._flush_pending()
        self.out.flush()

    def _flush_pending(self) -> None:
        if self._widths is not None:
            return
        self._widths = table_widths(self.columns, self._pending, self.width)
        self._write_cells(self.columns)
        for cells in self._pending:
            self._write_cells(cells)
        self._pending = []

    def _write_cells(self, cells: Sequence[str]) -> None:
        assert self._widths is not None
        parts = []
        last = len(cells) - 1
        for i, (column, text, width) in enumerate(zip(self.columns, cells, self._widths, strict=True)):
            text = cut(text, width)
            if i == last and column not in self.numeric:
                parts.append(text)
            elif column in self.numeric:
                parts.append(text.rjust(width))
            else:
                parts.append(text.ljust(width))
        self.out.write("  ".join(parts).rstrip() + "\n")


def table_widths(columns: Sequence[str], rows: Sequence[Sequence[str]], total: int) -> list[int]:
    """Column widths fitting ``rows`` (and the header) in ``total`` characters if they can.

    The first column (the id, which a reader copies) is never cut. Past ``total``, the last
    column (free text: an error) is cut first, then the widest of the others, but no column
    below ``MIN_COLUMN`` or its header: on a very narrow terminal the lines wrap instead.
    """
    widths = [max([len(c), *(len(cut(r[i], 10**6)) for r in rows)]) for i, c in enumerate(columns)]
    gaps = 2 * (len(columns) - 1)

    def excess() -> int:
        return sum(widths) + gaps - total

    def floor(i: int) -> int:
        return max(MIN_COLUMN, len(columns[i]))

    last = len(widths) - 1
    if last > 0 and excess() > 0:
        widths[last] = max(floor(last), widths[last] - excess())
    while excess() > 0:
        cuttable = [i for i in range(1, last) if widths[i] > floor(i)]
        if not cuttable:
            break
        widest = max(cuttable, key=lambda i: widths[i])
        widths[widest] = max(floor(widest), widths[widest] - excess())
    return widths


def _json_row(columns: Sequence[str], row: Mapping[str, Any]) -> str:
    return json.dumps({c: json_value(row.get(c)) for c in columns}, ensure_ascii=False, default=str)
