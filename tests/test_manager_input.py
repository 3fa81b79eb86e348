"""Hostile and odd request bodies: every one is a 422 that says what and where, never a 500 or 400.

Covers unknown fields (every body model refuses them), values that JSON or msgpack cannot carry
(NaN, Infinity, 1e400, integers beyond 64 bits, lone surrogates), nesting limits, bytes that are
not JSON, and the 422 answer itself rendering whatever it echoes.
"""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest

from jobbers.client import JobbersClient
from jobbers.errors import InvalidParamsError
from jobbers.json_values import MAX_BODY_DEPTH, MAX_INT, MAX_PARAMS_DEPTH
from jobbers.manager.errors import SafeJSONResponse, validation_entry
from jobbers.models.task import TaskStatus
from jobbers.state.store import TaskStore
from tests.helpers import count_by_status
from tests.manager_support import api, manager_settings, register_test_tasks, registered, submit
from tests.test_json_values import nested

__all__ = ["api", "manager_settings", "registered"]  # fixtures used by this module

JSON = {"Content-Type": "application/json"}
UNKNOWN_TASK = "01ARZ3NDEKTSV4RRFFQ69G5FAV"

#: (method, path, a valid body) for every route that takes a JSON body; ``{value}`` marks where
#: the tests put a hostile value.
BODY_ROUTES: list[tuple[str, str, str]] = [
    ("POST", "/tasks", '{"name": "anything", "params": {"x": {value}}}'),
    ("POST", "/tasks/bulk", '{"tasks": [{"name": "anything", "params": {"x": {value}}}]}'),
    ("POST", "/tasks/cancel", '{"task_ids": [{value}]}'),
    ("POST", "/dead-letter-queue/resubmit", '{"task_ids": [{value}]}'),
    ("POST", "/queues", '{"name": "q1", "max_concurrent": {value}}'),
    ("PUT", "/queues/q1", '{"max_concurrent": {value}}'),
    ("PATCH", "/queues/default", '{"rate_numerator": {value}}'),
    ("POST", "/roles", '{"name": "r1", "queues": [{value}]}'),
    ("PUT", "/roles/r1", '{"queues": [{value}]}'),
]
HOSTILE_VALUES = {
    "lone surrogate": ('"\\ud800"', "invalid_unicode"),
    "NaN": ("NaN", "number_not_finite"),
    "Infinity": ("Infinity", "number_not_finite"),
    "1e400": ("1e400", "number_not_finite"),
    "integer beyond 64 bits": ("1" + "0" * 30, "int_out_of_range"),
    "a million digits": ("9" * 1_000_000, "int_out_of_range"),
}


@pytest.mark.parametrize("value_name", sorted(HOSTILE_VALUES))
@pytest.mark.parametrize(("method", "path", "template"), BODY_ROUTES, ids=[f"{m} {p}" for m, p, _ in BODY_ROUTES])
async def test_values_json_or_msgpack_cannot_carry_are_422_naming_the_place(
    api: httpx.AsyncClient, method: str, path: str, template: str, value_name: str
) -> None:
    literal, kind = HOSTILE_VALUES[value_name]
    body = template.replace("{value}", literal).encode()

    response = await api.request(method, path, content=body, headers=JSON)

    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["type"] == kind and error["loc"][0] == "body" and len(error["loc"]) > 1, error
    assert len(response.content) < 2000  # nothing big is echoed


async def test_a_refused_value_writes_nothing(api: httpx.AsyncClient) -> None:
    response = await api.post("/tasks", content=b'{"name": "anything", "params": {"n": 99999999999999999999}}',
                              headers=JSON)  # fmt: skip

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "params", "n"]
    assert (await api.get("/tasks")).json()["total"] == 0


async def test_the_largest_64_bit_integers_are_stored_and_served_back(api: httpx.AsyncClient) -> None:
    body = await submit(api, "anything", params={"big": MAX_INT, "small": -(2**63)})

    assert (await api.get(f"/task-status/{body['id']}")).json()["params"] == {"big": MAX_INT, "small": -(2**63)}


@pytest.mark.parametrize(
    ("body", "content_type", "kind"),
    [
        (b"\xff\xfe{}", "application/json", "json_invalid"),
        (b'{"name": "add"', "application/json", "json_invalid"),
        (b"[" * 200_000 + b"]" * 200_000, "application/json", "nested_too_deep"),
        (b'{"name": "add", "params": {"a": 1}}', "text/plain", "content_type"),
        (b'{"name": "add", "params": {"a": 1}}', "application/x-www-form-urlencoded", "content_type"),
    ],
    ids=["not UTF-8", "truncated", "nested 200,000 deep", "text/plain", "form"],
)
async def test_bodies_that_are_not_json_are_422_not_400(
    api: httpx.AsyncClient, body: bytes, content_type: str, kind: str
) -> None:
    response = await api.post("/tasks", content=body, headers={"Content-Type": content_type})

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == kind


async def test_a_body_nested_deeper_than_the_limit_is_refused(api: httpx.AsyncClient) -> None:
    deep = json.dumps({"name": "anything", "params": {"x": nested(MAX_BODY_DEPTH)}})

    response = await api.post("/tasks", content=deep, headers=JSON)

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "nested_too_deep"


# -- the params nesting limit -----------------------------------------------------------------


async def test_params_nested_to_the_limit_are_accepted_and_served_back(api: httpx.AsyncClient) -> None:
    params = nested(MAX_PARAMS_DEPTH)

    body = await submit(api, "anything", params=params)

    assert (await api.get(f"/task-status/{body['id']}")).json()["params"] == params
    assert (await api.get("/tasks")).json()["tasks"][0]["params"] == params


async def test_params_nested_past_the_limit_are_422_on_submit(api: httpx.AsyncClient) -> None:
    response = await api.post("/tasks", json={"name": "anything", "params": nested(MAX_PARAMS_DEPTH + 1)})

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "params"] and error["type"] == "nested_too_deep"
    assert f"at most {MAX_PARAMS_DEPTH} levels" in error["msg"] and "params['a']" in error["msg"]
    assert (await api.get("/tasks")).json()["total"] == 0


async def test_params_nested_past_the_limit_are_422_on_bulk_submit_and_nothing_is_written(
    api: httpx.AsyncClient,
) -> None:
    tasks = [{"name": "anything", "params": {}}, {"name": "anything", "params": nested(MAX_PARAMS_DEPTH + 1)}]

    response = await api.post("/tasks/bulk", json={"tasks": tasks})

    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "tasks", 1, "params"]]
    assert (await api.get("/tasks")).json()["total"] == 0


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (nested(MAX_PARAMS_DEPTH + 1), "nest at most"),
        ({"n": 2**64}, "64 bits"),
        ({"x": float("nan")}, "finite"),
        ({"s": "\ud800"}, "lone surrogate"),
        ({"raw": b"\x00"}, "only JSON values"),
    ],
)
async def test_python_client_refuses_params_that_cannot_be_stored_and_shown(
    store: TaskStore, params: dict[str, Any], match: str
) -> None:
    register_test_tasks()
    client = JobbersClient(store)

    with pytest.raises(InvalidParamsError, match=match):
        client.build("anything", params)
    with pytest.raises(InvalidParamsError, match=match):
        await client.submit("anything", params)
    assert await count_by_status(store, TaskStatus.SUBMITTED) == 0


# -- request bodies are strict ----------------------------------------------------------------

#: (method, path, a valid body, where an unknown field goes) for every body model.
STRICT_BODIES: list[tuple[str, str, dict[str, Any], tuple[str | int, ...]]] = [
    ("POST", "/tasks", {"name": "add", "params": {"a": 1}}, ()),
    ("POST", "/tasks/bulk", {"tasks": [{"name": "add", "params": {"a": 1}}]}, ("tasks", 0)),
    ("POST", "/tasks/bulk", {"tasks": [{"name": "add", "params": {"a": 1}}]}, ()),
    ("POST", "/tasks/cancel", {"task_ids": ["01JBKR2E5F3G4H5J6K7M8N9P0Q"]}, ()),
    ("POST", "/dead-letter-queue/resubmit", {"task_name": "add"}, ()),
    ("POST", "/queues", {"name": "q1"}, ()),
    ("PUT", "/queues/q1", {"max_concurrent": 2}, ()),
    ("PATCH", "/queues/default", {"max_concurrent": 2}, ()),
    ("POST", "/roles", {"name": "r1", "queues": []}, ()),
    ("PUT", "/roles/r1", {"queues": []}, ()),
]


def _put_at(body: dict[str, Any], where: tuple[str | int, ...], key: str, value: object) -> dict[str, Any]:
    target: Any = body
    for step in where:
        target = target[step]
    target[key] = value
    return body


@pytest.mark.parametrize(("method", "path", "body", "where"), STRICT_BODIES,
                         ids=[f"{m} {p} {'.'.join(map(str, w))}" for m, p, _, w in STRICT_BODIES])  # fmt: skip
async def test_every_request_body_refuses_an_unknown_field_by_name(
    api: httpx.AsyncClient, method: str, path: str, body: dict[str, Any], where: tuple[str | int, ...]
) -> None:
    response = await api.request(method, path, json=_put_at(body, where, "maxConcurrent", 3))

    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["type"] == "extra_forbidden" and error["loc"] == ["body", *where, "maxConcurrent"]


async def test_submit_with_a_misspelt_priority_is_refused_not_dropped(api: httpx.AsyncClient) -> None:
    response = await api.post("/tasks", json={"name": "add", "params": {"a": 1}, "priorty": 10})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "priorty"]
    assert (await api.get("/tasks")).json()["total"] == 0


# -- the 422 answer renders whatever it echoes ------------------------------------------------


def test_validation_entries_render_surrogates_nan_and_huge_values() -> None:
    errors = [
        {"type": "string_type", "loc": ("body", "\ud800"), "msg": "bad \udc00", "input": "\ud800" * 1000},
        {"type": "float_type", "loc": ("body", "x"), "msg": "m", "input": math.nan, "ctx": {"error": ValueError("v")}},
        {"type": "int_type", "loc": ("body", "y"), "msg": "m", "input": 10**5000},
        {"type": "dict_type", "loc": ("body",), "msg": "m", "input": {"big": "x" * 10**6}},
    ]

    body = SafeJSONResponse({"detail": [validation_entry(e) for e in errors]}).body
    detail = json.loads(body)["detail"]

    assert detail[0]["loc"] == ["body", "\ufffd"] and detail[0]["input"].startswith("\ufffd" * 200)
    assert len(detail[0]["input"]) <= 203
    assert detail[1]["input"] is None and detail[1]["ctx"] == {"error": "v"}
    assert "integer of" in detail[2]["input"]
    assert "input" not in detail[3] and len(body) < 2000


async def test_a_query_or_path_value_that_fails_validation_is_echoed_safely(api: httpx.AsyncClient) -> None:
    odd = await api.get("/tasks?queue=%ED%A0%80&limit=%ED%A0%80")  # a surrogate's UTF-8 bytes
    long_cursor = await api.get("/tasks", params={"cursor": "x" * 5000})

    assert odd.status_code == 422 and long_cursor.status_code == 422
    assert len(long_cursor.content) < 2000


# -- unknown query parameters -------------------------------------------------------------------


async def test_every_route_refuses_a_query_parameter_it_does_not_take_by_name(api: httpx.AsyncClient) -> None:
    """A misspelt filter (``?stauts=failed``) would otherwise answer as if no filter were given:
    every route of the schema answers 422 naming it, and writes nothing."""
    spec = (await api.get("/openapi.json")).json()
    asked = 0
    for path, operations in spec["paths"].items():
        concrete = path.replace("{task_id}", UNKNOWN_TASK).replace("{workflow_id}", UNKNOWN_TASK)
        concrete = concrete.replace("{", "").replace("}", "")
        for method, operation in operations.items():
            takes = sorted(p["name"] for p in operation.get("parameters", []) if p["in"] == "query")
            response = await api.request(method.upper(), concrete, params={"stauts": "failed"})
            assert response.status_code == 422, (method, path, response.text)
            (error,) = response.json()["detail"]
            assert error["type"] == "extra_forbidden" and error["loc"] == ["query", "stauts"], error
            assert error["msg"].endswith(f"takes: {', '.join(takes) or 'none'})"), error
            asked += 1
    assert asked >= 40
    assert (await api.get("/tasks")).json()["total"] == 0


async def test_the_query_parameters_a_route_takes_still_work(api: httpx.AsyncClient) -> None:
    task = await submit(api)
    response = await api.get("/tasks", params={"status": "submitted", "limit": 5})
    assert response.status_code == 200 and [t["id"] for t in response.json()["tasks"]] == [task["id"]]
    response = await api.get(f"/task-status/{task['id']}", params={"wait": 0.2})
    assert response.status_code == 200 and response.json()["status"] == "submitted"
