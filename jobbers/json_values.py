"""What a JSON value sent to Jobbers may hold, so that it can be stored and served back.

A task's params travel as JSON over HTTP, as msgpack in Redis and as JSON again in every answer
that shows the task. A value that one of those steps cannot carry is refused at submit (422 over
REST, ``InvalidParamsError`` from the Python client) instead of being accepted and then breaking
the listings that show it:

- params nest at most ``MAX_PARAMS_DEPTH`` containers deep (the params object is the first);
  a whole request body at most ``MAX_BODY_DEPTH``;
- integers fit in 64 bits: ``MIN_INT`` … ``MAX_INT`` (what msgpack stores);
- numbers are finite: no ``NaN``, ``Infinity``, or a literal such as ``1e400`` that overflows;
- strings are valid Unicode: no lone surrogate such as ``"\\ud800"``;
- only JSON types: objects with string keys, arrays (lists or tuples from Python), strings,
  numbers, booleans and null.

Checks are iterative (no recursion limit to hit) and build a value's path only for the problem
they report, so a bulk submit of thousands of flat params costs microseconds per task.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobbers.errors import InvalidParamsError

MAX_PARAMS_DEPTH = 32
MAX_BODY_DEPTH = 64
MIN_INT = -(2**63)
MAX_INT = 2**64 - 1
#: Integer literals with more digits are out of range whatever they are, and are never converted
#: (so a megabyte of digits costs nothing, and Python's 4,300-digit conversion limit is never met).
_MAX_INT_DIGITS = len(str(MAX_INT))
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_RANGE = f"integers must fit in 64 bits ({MIN_INT} to {MAX_INT})"
_LONE_SURROGATE = "must be valid Unicode; this one holds a lone surrogate"

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """Why a value cannot be stored and served back: where (``path``), what kind, and a message."""

    path: Path
    kind: str
    message: str

    def where(self, root: str, shown: int = 8) -> str:
        """The path as Python subscripts under ``root`` (``params['a'][0]``), its first ``shown``
        steps only (a path 33 levels deep is not worth reading whole)."""
        steps = "".join(f"[{part!r}]" for part in self.path[:shown])
        return root + steps + ("[...]" if len(self.path) > shown else "")


class _OutOfRangeInt:
    """An integer literal too long to be in range, kept unconverted until the walk reports it."""

    def __init__(self, literal: str) -> None:
        self.literal = literal


def _parse_int(literal: str) -> int | _OutOfRangeInt:
    return _OutOfRangeInt(literal) if len(literal.lstrip("-")) > _MAX_INT_DIGITS else int(literal)


def _scalar_problem(value: object) -> tuple[str, str] | None:
    """(kind, message) when a non-container value breaks a rule."""
    kind = type(value)
    if kind is str:
        text: str = value  # type: ignore[assignment]
        if not text.isascii() and _SURROGATE.search(text):
            return "invalid_unicode", f"strings {_LONE_SURROGATE}"
        return None
    if kind is bool or value is None:
        return None
    if kind is int:
        number: int = value  # type: ignore[assignment]
        if MIN_INT <= number <= MAX_INT:
            return None
        return "int_out_of_range", _INT_RANGE
    if kind is float:
        if math.isfinite(value):  # type: ignore[arg-type]
            return None
        return "number_not_finite", f"numbers must be finite, not {value!r} (NaN, Infinity, 1e400, ...)"
    if isinstance(value, _OutOfRangeInt):
        digits = len(value.literal.lstrip("-"))
        return "int_out_of_range", f"{_INT_RANGE}; this one has {digits} digits"
    if isinstance(value, bool | int | float | str):  # subclasses (enums and the like) from Python
        return _scalar_problem(_plain(value))
    return "not_json", f"only JSON values can be stored, not {type(value).__name__}"


def _plain(value: bool | int | float | str) -> bool | int | float | str:
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    return value  # pragma: no cover - unreachable: the caller checked the types


def find_problem(value: Any, max_depth: int) -> Problem | None:
    """The first part of ``value`` that breaks a rule of this module, or None.

    ``max_depth`` counts containers: ``{"a": 1}`` is 1 deep, ``{"a": [1]}`` 2.
    """
    if not isinstance(value, dict | list | tuple):
        found = _scalar_problem(value)
        return Problem((), *found) if found else None
    # Each entry: a container, its depth, and its path (built once per container, not per value).
    stack: list[tuple[Any, int, Path]] = [(value, 1, ())]
    while stack:
        container, depth, path = stack.pop()
        if depth > max_depth:
            return Problem(path, "nested_too_deep", f"values may nest at most {max_depth} levels deep")
        is_object = isinstance(container, dict)
        for key, item in container.items() if is_object else enumerate(container):
            if is_object:
                if type(key) is not str:
                    return Problem(path, "not_json", f"object keys must be strings, not {type(key).__name__}")
                if not key.isascii() and _SURROGATE.search(key):
                    return Problem((*path, key), "invalid_unicode", f"keys {_LONE_SURROGATE}")
            # The common cases inline (this runs for every value of a 10,000-task bulk submit);
            # anything else goes through _scalar_problem.
            kind = type(item)
            if kind is str:
                if item.isascii():
                    continue
            elif kind is int:
                if MIN_INT <= item <= MAX_INT:
                    continue
            elif kind is dict or kind is list:
                stack.append((item, depth + 1, (*path, key)))
                continue
            elif item is None or kind is bool:
                continue
            elif isinstance(item, dict | list | tuple):
                stack.append((item, depth + 1, (*path, key)))
                continue
            found = _scalar_problem(item)
            if found:
                return Problem((*path, key), *found)
    return None


def check_params(params: Mapping[str, Any]) -> None:
    """Raise ``InvalidParamsError`` saying what and where, unless ``params`` can be stored and shown."""
    problem = find_problem(params, MAX_PARAMS_DEPTH)
    if problem is not None:
        raise InvalidParamsError(f"{problem.message} (at {problem.where('params')})")


def loads(raw: bytes, max_depth: int = MAX_BODY_DEPTH) -> tuple[Any, Problem | None]:
    """Parse a JSON document and check it: (value, None), or (None, the first problem found).

    Syntax errors and bytes that are not UTF-8 are ``json_invalid`` problems with a message saying
    where, never exceptions.
    """
    try:
        # UTF-8 only (RFC 8259): json.loads would also guess UTF-16 and UTF-32 from raw bytes.
        text = raw.decode("utf-8")
        try:
            # NaN and the infinities parse to floats, which the walk reports with their path.
            value = json.loads(text)
        except ValueError as exc:
            if isinstance(exc, json.JSONDecodeError):
                raise
            # An integer literal longer than Python converts (4,300 digits): parse again, keeping
            # long literals unconverted, so the walk reports where it is.
            value = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        return None, Problem((), "json_invalid", f"invalid JSON: {exc.msg} at {where}")
    except UnicodeDecodeError as exc:
        return None, Problem((), "json_invalid", f"the body is not valid UTF-8 (at byte {exc.start})")
    except RecursionError:
        return None, Problem((), "nested_too_deep", f"values may nest at most {max_depth} levels deep")
    return value, find_problem(value, max_depth)
