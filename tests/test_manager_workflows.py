"""The manager's workflow routes: submit a graph as JSON, list, inspect and cancel runs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from jobbers.models.task import TaskStatus
from jobbers.state.codec import pack
from jobbers.state.store import Outcome, TaskStore
from jobbers.state.workflows import relay_workflow_outbox
from tests.manager_support import api, claim, create_queue, manager_settings, registered

__all__ = ["api", "manager_settings", "registered"]  # fixtures used by this module


def _node(node_id: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("name", "add")
    if fields["name"] == "add":
        fields.setdefault("params", {"a": 1})
    return {"id": node_id, **fields}


DIAMOND = [
    _node("a"),
    _node("b", after=["a"]),
    _node("c", after=["a"]),
    _node("d", name="anything", after=["b", "c"], results_param="parents"),
    _node("alert", name="anything", on_error_of=["d"], error_param="err"),
]


async def _finish_ready(store: TaskStore) -> None:
    """Complete every ready node (result: its params' ``a``)."""
    for t in await claim(store):
        await store.finish([Outcome(t.id, t.token, "completed", result=pack(t.params.get("a")))])


async def test_a_submitted_diamond_runs_to_completed_and_is_listed(
    api: httpx.AsyncClient, store: TaskStore
) -> None:
    response = await api.post("/workflows", json={"name": "diamond", "nodes": DIAMOND})

    assert response.status_code == 201, response.text
    run = response.json()
    assert run["status"] == "running" and run["name"] == "diamond" and run["queue"] == "default"
    by_node = {n["id"]: n for n in run["nodes"]}
    assert by_node["a"]["status"] == "submitted" and by_node["d"]["status"] is None
    assert by_node["d"]["after"] == ["b", "c"] and by_node["alert"]["on_error_of"] == ["d"]
    task = (await api.get(f"/task-status/{by_node['a']['task_id']}")).json()
    assert task["workflow_id"] == run["id"] and task["workflow_node"] == "a"

    await _finish_ready(store)  # a
    await _finish_ready(store)  # b and c
    (d,) = await claim(store)
    assert d.params["parents"] == {"b": 1, "c": 1}  # fan-in: both parents' results, by node id
    await store.finish([Outcome(d.id, d.token, "completed")])

    done = (await api.get(f"/workflows/{run['id']}")).json()
    assert done["status"] == "completed" and done["completed_at"] and done["failed_node"] is None
    assert {n["id"]: n["status"] for n in done["nodes"]} == {
        "a": "completed", "b": "completed", "c": "completed", "d": "completed", "alert": "cancelled",
    }  # fmt: skip
    listed = (await api.get("/workflows")).json()
    assert [w["id"] for w in listed["workflows"]] == [run["id"]] and listed["next_cursor"] is None
    assert "nodes" not in listed["workflows"][0]


async def test_submitting_the_same_id_again_returns_the_run_as_it_is(api: httpx.AsyncClient) -> None:
    first = await api.post("/workflows", json={"nodes": DIAMOND})
    again = await api.post("/workflows", json={"nodes": DIAMOND[:1], "id": first.json()["id"].lower()})

    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and len(again.json()["nodes"]) == 5


async def test_the_listing_pages_newest_first_with_a_cursor(api: httpx.AsyncClient) -> None:
    ids = [(await api.post("/workflows", json={"nodes": [_node("only")]})).json()["id"] for _ in range(5)]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/workflows", params=params)).json()
        seen += [w["id"] for w in page["workflows"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == ids[::-1] and pages == 3
    other = (await api.get("/workflows", params={"queue": "elsewhere"})).json()
    assert other["workflows"] == []
    bad = await api.get("/workflows", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422


@pytest.mark.parametrize(
    ("nodes", "loc", "words"),
    [
        ([_node("a"), _node("b", name="nope")], ["body", "nodes", 1, "name"], "node 'b': no task 'nope'"),
        (
            [_node("a", queue="missing")],
            ["body", "nodes", 0, "queue"],
            "node 'a': queue 'missing' does not exist",
        ),
        ([_node("a", after=["b"]), _node("b", after=["a"])], ["body", "nodes", 0, "after"], "cycle"),
        (
            [_node("a"), _node("h", on_error_of=["ghost"])],
            ["body", "nodes", 1, "on_error_of"],
            "unknown node 'ghost'",
        ),
        ([_node("a", params={"z": 1})], ["body", "nodes", 0, "params"], "node 'a':"),
        ([_node("a"), _node("a")], ["body", "nodes", 0, "id"], "used twice"),
    ],
)
async def test_a_graph_that_cannot_run_is_a_422_naming_its_node_and_writes_nothing(
    api: httpx.AsyncClient, store: TaskStore, nodes: list[dict[str, Any]], loc: list[Any], words: str
) -> None:
    response = await api.post("/workflows", json={"nodes": nodes})

    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == loc and words in error["msg"]
    assert (await api.get("/workflows")).json()["workflows"] == []
    assert (await api.get("/tasks")).json()["tasks"] == []


async def test_nodes_in_two_queues_run_through_the_outbox_and_a_missing_queue_is_a_422(
    api: httpx.AsyncClient, store: TaskStore
) -> None:
    await create_queue(api, "reports")
    missing = await api.post("/workflows", json={"nodes": [_node("a"), _node("b", queue="nope", after=["a"])]})
    response = await api.post(
        "/workflows",
        json={"nodes": [_node("a"), _node("b", queue="reports", after=["a"]),
                        _node("c", name="anything", after=["b"], results_param="parents")]},
    )  # fmt: skip

    assert missing.status_code == 422
    (error,) = missing.json()["detail"]
    assert error["loc"] == ["body", "nodes", 1, "queue"] and "nope" in error["msg"]
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["queue"] == "default"  # the run lives with its first node
    await _finish_ready(store)
    assert await relay_workflow_outbox(store, ["default", "reports"]) == 1  # b is made in reports
    (b,) = await claim(store, "reports")
    await store.finish([Outcome(b.id, b.token, "completed", result=pack(5))])
    assert await relay_workflow_outbox(store, ["default", "reports"]) == 1  # its end, settled at home
    (c,) = await claim(store)
    assert c.params["parents"] == {"b": 5}
    await store.finish([Outcome(c.id, c.token, "completed")])
    shown = (await api.get(f"/workflows/{run['id']}")).json()
    assert shown["status"] == "completed" and {n["status"] for n in shown["nodes"]} == {"completed"}


@pytest.mark.parametrize(
    "body",
    [
        {"nodes": [_node("a", colour="red")]},
        {"nodes": [_node("a")], "edges": []},
        {"nodes": []},
        {"nodes": [_node("bad id!")]},
        {"nodes": [_node("a", priority="1")]},
    ],
)
async def test_unknown_fields_and_malformed_nodes_are_refused(
    api: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await api.post("/workflows", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "body"


async def test_cancelling_a_run_mid_way_and_again(api: httpx.AsyncClient, store: TaskStore) -> None:
    run = (await api.post("/workflows", json={"nodes": DIAMOND})).json()
    (a,) = await claim(store)  # a is running

    response = await api.post(f"/workflows/{run['id']}/cancel")

    assert response.status_code == 200, response.text
    states = {n["id"]: n["status"] for n in response.json()["nodes"]}
    assert states == {
        "a": "started",
        "b": "cancelled",
        "c": "cancelled",
        "d": "cancelled",
        "alert": "cancelled",
    }
    assert (await store.get_task(a.id)).cancel_requested  # type: ignore[union-attr]
    await store.finish([Outcome(a.id, a.token, TaskStatus.CANCELLED)])
    assert (await api.get(f"/workflows/{run['id']}")).json()["status"] == "cancelled"
    again = await api.post(f"/workflows/{run['id']}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]


async def test_unknown_and_malformed_run_ids(api: httpx.AsyncClient) -> None:
    unknown = "01JCZ0000000000000000000AA"

    assert (await api.get(f"/workflows/{unknown}")).status_code == 404
    assert (await api.post(f"/workflows/{unknown}/cancel")).status_code == 404
    assert (await api.get("/workflows/not-an-id")).status_code == 422
    wrong = await api.delete("/workflows")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD, POST"
