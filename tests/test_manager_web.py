"""What a browser meets: security headers on every answer, ``/`` leading to the UI, and ``/docs``
working offline from assets inside the package (also in the built wheel)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from jobbers.manager import create_app
from jobbers.manager.docs_page import SWAGGER_UI_DIR
from jobbers.manager.middleware import API_CSP, DOCS_CSP, UI_CSP
from jobbers.settings import Settings
from tests.manager_support import api, manager_settings, registered, running

__all__ = ["api", "manager_settings", "registered"]  # fixtures used by this module

ROOT = Path(__file__).resolve().parent.parent
BASE_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def _assert_security_headers(response: httpx.Response, csp: str) -> None:
    for name, value in BASE_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name, response.headers)
    assert response.headers["content-security-policy"] == csp
    assert "frame-ancestors 'none'" in csp


@pytest.mark.parametrize(
    ("method", "path", "status", "csp"),
    [
        ("GET", "/tasks", 200, API_CSP),
        ("GET", "/healthz", 200, API_CSP),
        ("GET", "/openapi.json", 200, API_CSP),
        ("GET", "/task-status/01JBKR2E5F3G4H5J6K7M8N9P0Q", 404, API_CSP),
        ("GET", "/no-such-route", 404, API_CSP),
        ("DELETE", "/tasks", 405, API_CSP),
        ("POST", "/tasks", 422, API_CSP),
        ("GET", "/", 307, API_CSP),
        ("GET", "/ui/", 200, UI_CSP),
        ("GET", "/ui/js/app.js", 200, UI_CSP),
        ("GET", "/ui/no-such-file.js", 404, UI_CSP),
        ("GET", "/docs", 200, DOCS_CSP),
        ("GET", "/docs/assets/swagger-ui.css", 200, DOCS_CSP),
        ("GET", "/docs/assets/missing.js", 404, DOCS_CSP),
    ],
)
async def test_every_answer_carries_the_security_headers(
    api: httpx.AsyncClient, method: str, path: str, status: int, csp: str
) -> None:
    response = await api.request(method, path)

    assert response.status_code == status
    _assert_security_headers(response, csp)


async def test_api_answers_are_not_cached_and_ui_files_are_revalidated(api: httpx.AsyncClient) -> None:
    assert (await api.get("/tasks")).headers["cache-control"] == "no-store"
    assert (await api.get("/ui/js/app.js")).headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/tasks", "GET, HEAD, POST"),
        ("OPTIONS", "/queues", "GET, HEAD, POST"),
        ("POST", "/queues/default", "DELETE, PATCH, PUT"),
        ("POST", "/roles/default", "DELETE, GET, HEAD, PUT"),
        ("PUT", "/docs", "GET, HEAD"),
        ("OPTIONS", "/recurring", "GET, HEAD, POST"),
        ("PATCH", "/recurring/nightly", "DELETE, GET, HEAD, PUT"),
    ],
)
async def test_method_not_allowed_lists_every_method_of_the_path(
    api: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await api.request(method, path)

    assert response.status_code == 405 and response.headers["allow"] == allow


async def test_too_large_and_unauthorized_answers_carry_the_headers_too(manager_settings: Settings) -> None:
    settings = manager_settings.model_copy(
        update={"manager_api_token": SecretStr("s3cret"), "manager_max_body_bytes": 100}
    )
    async for client in running(create_app(settings)):
        unauthorized = await client.get("/tasks")
        too_large = await client.post("/tasks", content=b"x" * 200, headers={"Authorization": "Bearer s3cret"})

        assert unauthorized.status_code == 401 and too_large.status_code == 413
        _assert_security_headers(unauthorized, API_CSP)
        _assert_security_headers(too_large, API_CSP)


async def test_root_redirects_browsers_to_the_ui(api: httpx.AsyncClient) -> None:
    response = await api.get("/")

    assert response.status_code == 307 and response.headers["location"] == "ui/"
    assert (await api.get("/", follow_redirects=True)).url.path == "/ui/"


@pytest.fixture
async def secured_api(manager_settings: Settings, registered: None) -> AsyncIterator[httpx.AsyncClient]:
    settings = manager_settings.model_copy(update={"manager_api_token": SecretStr("s3cret")})
    async for client in running(create_app(settings)):
        yield client


async def test_root_redirect_needs_no_token(secured_api: httpx.AsyncClient) -> None:
    assert (await secured_api.get("/")).status_code == 307


# -- /docs ------------------------------------------------------------------------------------


def _references(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


async def test_docs_page_references_only_local_assets_and_each_is_served(api: httpx.AsyncClient) -> None:
    page = await api.get("/docs")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    references = _references(page.text)
    assert references, page.text
    assert not [r for r in references if "//" in r or r.startswith("/")]  # relative: same origin, any prefix
    assert "<script>" not in page.text  # no inline script: the CSP forbids it
    for reference in references:
        asset = await api.get(f"/{reference}")
        assert asset.status_code == 200 and asset.content, reference
    bundle = await api.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert len(bundle.content) > 500_000 and b"SwaggerUIBundle" in bundle.content
    assert 'data-openapi-url="openapi.json"' in page.text


async def test_redoc_with_its_cdn_assets_is_not_served(api: httpx.AsyncClient) -> None:
    assert (await api.get("/redoc")).status_code == 404
    assert "cdn" not in (await api.get("/docs")).text.lower()


def test_vendored_swagger_ui_keeps_its_licence() -> None:
    assert "Apache License" in (SWAGGER_UI_DIR / "LICENSE").read_text()
    assert (SWAGGER_UI_DIR / "NOTICE").exists() and (SWAGGER_UI_DIR / "swagger-ui-bundle.js.LICENSE.txt").exists()


def test_the_wheel_ships_the_docs_and_ui_assets(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("jobbers-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "init.js", "LICENSE", "NOTICE"):
        assert f"jobbers/manager/swagger_ui/{asset}" in names
    assert "jobbers/manager/ui/index.html" in names
