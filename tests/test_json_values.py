"""The rules for JSON values Jobbers stores and serves back (pure, no Redis)."""

from __future__ import annotations

import enum

import pytest

from jobbers.errors import InvalidParamsError
from jobbers.json_values import MAX_INT, MAX_PARAMS_DEPTH, MIN_INT, check_params, find_problem, loads


def nested(levels: int) -> dict[str, object]:
    """``{"a": {"a": ... 1}}`` with ``levels`` objects."""
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    assert isinstance(value, dict)
    return value


def test_params_nested_up_to_the_limit_are_accepted_one_more_level_is_not() -> None:
    assert find_problem(nested(MAX_PARAMS_DEPTH), MAX_PARAMS_DEPTH) is None

    problem = find_problem(nested(MAX_PARAMS_DEPTH + 1), MAX_PARAMS_DEPTH)

    assert problem is not None and problem.kind == "nested_too_deep"
    assert problem.path == ("a",) * MAX_PARAMS_DEPTH
    assert problem.where("params") == "params" + "['a']" * 8 + "[...]"


def test_lists_count_as_levels_too() -> None:
    assert find_problem({"a": [[1]]}, 3) is None
    assert find_problem({"a": [[[1]]]}, 3) is not None


@pytest.mark.parametrize("number", [MIN_INT, MAX_INT, 0, -1, 2**63])
def test_integers_in_the_64_bit_range_are_accepted(number: int) -> None:
    assert find_problem({"n": number}, 4) is None


@pytest.mark.parametrize("number", [MIN_INT - 1, MAX_INT + 1, 10**400])
def test_integers_outside_the_64_bit_range_are_refused_with_their_path(number: int) -> None:
    problem = find_problem({"n": [0, number]}, 4)

    assert problem is not None and problem.kind == "int_out_of_range" and problem.path == ("n", 1)
    assert str(MAX_INT) in problem.message


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused(number: float) -> None:
    problem = find_problem({"x": number}, 4)

    assert problem is not None and problem.kind == "number_not_finite" and problem.path == ("x",)


@pytest.mark.parametrize("value", [{"s": "a\ud800b"}, {"\udfff": 1}, ["ok", {"deep": ["\udc00"]}]])
def test_lone_surrogates_in_strings_or_keys_are_refused(value: object) -> None:
    problem = find_problem(value, 8)

    assert problem is not None and problem.kind == "invalid_unicode"


def test_paired_surrogates_and_other_unicode_are_fine() -> None:
    assert find_problem({"emoji": "\U0001f600", "é": "ünïcode"}, 4) is None


def test_only_json_types_may_be_stored() -> None:
    class Colour(enum.StrEnum):
        RED = "red"

    assert find_problem({"colour": Colour.RED, "pair": (1, 2), "none": None, "yes": True}, 4) is None
    raw = find_problem({"raw": b"bytes"}, 4)
    assert raw is not None and raw.kind == "not_json" and raw.path == ("raw",)
    problem = find_problem({"when": object()}, 4)
    assert problem is not None and problem.kind == "not_json" and "object" in problem.message
    keyed = find_problem({1: "int key"}, 4)
    assert keyed is not None and keyed.kind == "not_json"


def test_check_params_raises_invalid_params_error_saying_where() -> None:
    with pytest.raises(InvalidParamsError, match=r"64 bits .*params\['big'\]"):
        check_params({"big": 2**64})


@pytest.mark.parametrize(
    ("raw", "kind", "path"),
    [
        (b'{"a": NaN}', "number_not_finite", ("a",)),
        (b'{"a": -Infinity}', "number_not_finite", ("a",)),
        (b'{"a": [1e400]}', "number_not_finite", ("a", 0)),
        (b'{"a": 18446744073709551616}', "int_out_of_range", ("a",)),
        (b'{"a": ' + b"9" * 100_000 + b"}", "int_out_of_range", ("a",)),
        (b'{"a": "\\ud800"}', "invalid_unicode", ("a",)),
        (b"\xff\xfe{}", "json_invalid", ()),
        (b'{"a": ', "json_invalid", ()),
        (b"[" * 100_000 + b"]" * 100_000, "nested_too_deep", ()),
    ],
)
def test_loads_reports_what_cannot_be_stored(raw: bytes, kind: str, path: tuple[object, ...]) -> None:
    value, problem = loads(raw)

    assert value is None or problem is not None
    assert problem is not None and (problem.kind, problem.path) == (kind, path), problem


def test_loads_parses_ordinary_json() -> None:
    assert loads(b'{"a": [1, 2.5, "x", null, true], "b": 18446744073709551615}') == (
        {"a": [1, 2.5, "x", None, True], "b": MAX_INT},
        None,
    )
