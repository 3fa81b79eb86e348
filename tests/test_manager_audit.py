"""The event log's routes: GET /tasks/{id}/events, /audit-log and /audit-log/summary (strict
queries: 422 naming the field, unknown parameters refused)."""

from __future__ import annotations

import base64
import datetime as dt

import httpx
import pytest

from jobbers.models.task import TaskStatus
from jobbers.state.store import Outcome, TaskStore
from tests.manager_support import api, claim, manager_settings, registered, submit

__all__ = ["api", "manager_settings", "registered"]  # fixtures used by this module

UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


async def test_a_tasks_events_are_listed_in_order(api: httpx.AsyncClient, store: TaskStore) -> None:
    sub = await submit(api, correlation_id="agent-7")
    (held,) = await claim(store)
    await store.finish([Outcome(held.id, held.token, TaskStatus.FAILED, error_type="E", error_message="no")])
    response = await api.get(f"/tasks/{sub['id'].lower()}/events")
    assert response.status_code == 200
    body = response.json()
    assert body["task_id"] == sub["id"]
    assert [e["type"] for e in body["events"]] == ["submitted", "started", "failed"]
    assert body["events"][1]["worker_id"] == "test-worker" and body["events"][2]["detail"] == "E: no"
    assert all(e["attempt"] == 0 for e in body["events"])


async def test_a_cancel_through_the_api_says_so(api: httpx.AsyncClient) -> None:
    sub = await submit(api)
    assert (await api.post(f"/task/{sub['id']}/cancel")).status_code == 200
    events = (await api.get(f"/tasks/{sub['id']}/events")).json()["events"]
    assert events[-1]["type"] == "cancelled" and events[-1]["detail"] == "requested by POST /task/{id}/cancel"


async def test_events_of_an_unknown_task_are_404_and_a_bad_id_422(api: httpx.AsyncClient) -> None:
    assert (await api.get(f"/tasks/{UNKNOWN_ID}/events")).status_code == 404
    bad = await api.get("/tasks/not-an-id/events")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "task_id"]


async def test_the_audit_log_filters_and_pages(api: httpx.AsyncClient, store: TaskStore) -> None:
    ids = [(await submit(api, correlation_id=f"s{i % 2}", queue="default"))["id"] for i in range(5)]
    await claim(store, count=2)
    everything = (await api.get("/audit-log")).json()
    assert len(everything["events"]) == 7 and everything["next_cursor"] is None and everything["limit"] == 100
    started = (await api.get("/audit-log", params={"type": "started"})).json()["events"]
    assert [e["task_id"] for e in started] == ids[:2]
    both = (await api.get("/audit-log", params=[("type", "started"), ("type", "submitted")])).json()
    assert len(both["events"]) == 7
    s1 = (await api.get("/audit-log", params={"correlation_id": "s1"})).json()["events"]
    assert {e["task_id"] for e in s1} == {ids[1], ids[3]} and all(e["correlation_id"] == "s1" for e in s1)
    assert (await api.get("/audit-log", params={"task_name": "anything"})).json()["events"] == []
    assert (await api.get("/audit-log", params={"queue": "elsewhere"})).json()["events"] == []
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/audit-log", params=params)).json()
        seen += [(e["task_id"], e["type"]) for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [(e["task_id"], e["type"]) for e in everything["events"]]


async def test_the_audit_log_window(api: httpx.AsyncClient) -> None:
    await submit(api)
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    assert (await api.get("/audit-log", params={"since": future})).json()["events"] == []
    assert len((await api.get("/audit-log", params={"since": past, "until": future})).json()["events"]) == 1
    naive = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert len((await api.get("/audit-log", params={"since": naive})).json()["events"]) == 1


async def test_a_window_ending_at_the_epoch_is_empty(api: httpx.AsyncClient) -> None:
    await submit(api)
    epoch = {"until": "1970-01-01T00:00:00Z"}
    assert (await api.get("/audit-log", params=epoch)).json()["events"] == []


async def test_the_summary_counts_by_type_and_task_name(api: httpx.AsyncClient, store: TaskStore) -> None:
    for _ in range(3):
        await submit(api)
    await submit(api, name="anything")
    await claim(store, count=1)
    body = (await api.get("/audit-log/summary")).json()
    assert body["total"] == 5 and body["by_type"] == {"started": 1, "submitted": 4}
    assert body["by_task_name"] == [
        {"task_name": "add", "total": 4, "by_type": {"submitted": 3, "started": 1}},
        {"task_name": "anything", "total": 1, "by_type": {"submitted": 1}},
    ]
    since, until = dt.datetime.fromisoformat(body["since"]), dt.datetime.fromisoformat(body["until"])
    assert until - since == dt.timedelta(days=1)
    only = (await api.get("/audit-log/summary", params={"task_name": "anything", "type": "submitted"})).json()
    assert only["total"] == 1
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()
    assert (await api.get("/audit-log/summary", params={"since": future, "until": later})).json()["total"] == 0


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/audit-log", {"limit": 0}, "limit"),
        ("/audit-log", {"type": "exploded"}, "type"),
        ("/audit-log", {"since": "yesterday"}, "since"),
        ("/audit-log", {"until": "0.5"}, "until"),
        ("/audit-log/summary", {"since": "1733220000"}, "since"),
        ("/audit-log", {"queue": "a b"}, "queue"),
        ("/audit-log", {"correlation_id": ""}, "correlation_id"),
        ("/audit-log", {"correlation_id": "x" * 257}, "correlation_id"),
        ("/audit-log", {"cursor": "!!!"}, None),
        ("/audit-log", {"cursor": base64.urlsafe_b64encode(b"0:-5:default").decode()}, None),
        ("/audit-log", {"cursor": base64.urlsafe_b64encode(b"0:99999999999999999999:default").decode()}, None),
        ("/audit-log", {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ("/audit-log", {"corelation_id": "x"}, "corelation_id"),
        ("/audit-log", {"since": "1969-12-31T23:59:59Z"}, "since"),
        ("/audit-log", {"since": "0001-01-01T00:00:00+14:00"}, "since"),
        ("/audit-log", {"until": "9999-12-31T23:59:59-14:00"}, "until"),
        ("/audit-log/summary", {"until": "1970-01-01T00:00:00Z"}, "until"),
        ("/audit-log/summary", {"limit": 5}, "limit"),
        ("/audit-log/summary", {"until": "2026-01-01T00:00:00Z", "since": "2026-01-01T00:00:00Z"}, "until"),
        (f"/tasks/{UNKNOWN_ID}/events", {"limit": 5}, "limit"),
    ],
)
async def test_bad_or_unknown_query_parameters_are_422_naming_them(
    api: httpx.AsyncClient, path: str, params: dict[str, object], field: str | None
) -> None:
    response = await api.get(path, params=params)
    assert response.status_code == 422, response.text
    if field is not None:
        assert ["query", field] in [e["loc"][:2] for e in response.json()["detail"]]
