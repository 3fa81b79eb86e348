"""``/docs``: Swagger UI served from files inside the package (no CDN), so it works offline.

The assets are Swagger UI's own distribution (``swagger_ui/``, Apache-2.0, see its README.md),
served under ``/docs/assets/``. Every URL in the page is relative, so it also works behind a proxy
that mounts the manager under a path prefix.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from jobbers.manager.admin_ui import RevalidatedFiles

SWAGGER_UI_DIR = Path(__file__).with_name("swagger_ui")
SWAGGER_UI_VERSION = "5.35.0"
DOCS_PATH = "/docs"
DOCS_ASSETS_PATH = "/docs/assets"

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} - API docs</title>
  <link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi}"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script src="docs/assets/init.js"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Serve the API docs at ``/docs`` (create the app with ``docs_url=None``)."""
    openapi = (app.openapi_url or "/openapi.json").lstrip("/")
    page = _PAGE.format(title=app.title, openapi=openapi)

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page)

    app.mount(DOCS_ASSETS_PATH, RevalidatedFiles(directory=SWAGGER_UI_DIR), name="docs-assets")
