"""The admin UI: static files (vanilla ES modules, one CSS file, no build step) under ``/ui/``.

The files hold no data (every figure comes from the API, with the bearer token when one is set),
so they are served without auth. A strict Content-Security-Policy (``middleware.UI_CSP``, sent
with the other security headers on every answer) backs up the UI's rule of building the DOM from
text only: no inline script or style, no other origins.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

UI_DIR = Path(__file__).with_name("ui")
UI_PATH = "/ui"


class RevalidatedFiles(StaticFiles):
    """``StaticFiles`` whose files are always revalidated (ETag, so usually a 304), so an upgraded
    manager never runs a stale mix of modules."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        return response


def install_ui(app: FastAPI) -> None:
    """Serve the UI at ``/ui/`` (``/ui`` redirects there, so relative asset URLs resolve)."""

    @app.get(UI_PATH, include_in_schema=False)
    async def ui_root() -> RedirectResponse:
        # Relative, so it also works behind a proxy that mounts the manager under a prefix.
        return RedirectResponse("ui/", status_code=307)

    app.mount(UI_PATH, RevalidatedFiles(directory=UI_DIR, html=True), name="ui")
