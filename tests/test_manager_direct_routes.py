"""The submit routes' direct path (jobbers.manager.direct_routes): valid requests skip FastAPI's
dependency solving; every other request is answered by FastAPI exactly as before."""

from __future__ import annotations

from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import APIRouter

from jobbers.manager.deps import ServicesDep
from jobbers.manager.direct_routes import DirectRoute
from jobbers.manager.schemas import SubmitTask, TaskSubmitted
from tests.manager_support import api, manager_settings, registered

__all__ = ["api", "manager_settings", "registered"]  # fixtures used by this module

SUBMITS = [
    ("/tasks", {"name": "add", "params": {"a": 1}}),
    ("/tasks/bulk", {"tasks": [{"name": "add", "params": {"a": 1}}]}),
]


@pytest.mark.parametrize(("path", "body"), SUBMITS, ids=[p for p, _ in SUBMITS])
async def test_valid_submit_is_answered_without_fastapi_dependency_solving(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, path: str, body: dict[str, Any]
) -> None:
    async def refuse(**_: Any) -> None:
        raise AssertionError("FastAPI solved the dependencies of a valid submit")

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", refuse)

    response = await api.post(path, json=body, headers={"Idempotency-Key": f"direct-{path}"})

    assert response.status_code == 201
    retried = await api.post(path, json=body, headers={"Idempotency-Key": f"direct-{path}"})
    assert retried.status_code == 200
    first, again = response.json(), retried.json()
    assert again.get("id") == first.get("id") and again.get("tasks") == first.get("tasks")


@pytest.mark.parametrize("header", ["Idempotency-Key", "traceparent"])
@pytest.mark.parametrize(("path", "body"), SUBMITS, ids=[p for p, _ in SUBMITS])
async def test_over_long_header_on_a_submit_is_fastapis_422_naming_the_header(
    api: httpx.AsyncClient, path: str, body: dict[str, Any], header: str
) -> None:
    response = await api.post(path, json=body, headers={header: "x" * 300})

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["header", header.lower()] and error["type"] == "string_too_long"


@pytest.mark.parametrize(("path", "body"), SUBMITS, ids=[p for p, _ in SUBMITS])
async def test_invalid_submit_body_is_fastapis_422_naming_the_field(
    api: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    wrong = {**body, "colour": "blue"}

    response = await api.post(path, json=wrong)

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "colour"] and error["type"] == "extra_forbidden"


def test_direct_route_refuses_an_endpoint_it_cannot_fill() -> None:
    router = APIRouter(route_class=DirectRoute)

    async def with_query(body: SubmitTask, services: ServicesDep, page: int = 1) -> TaskSubmitted:
        raise NotImplementedError

    with pytest.raises(TypeError, match="only header and body parameters"):
        router.add_api_route("/x", with_query, methods=["POST"], response_model=TaskSubmitted)
