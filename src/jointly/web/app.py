"""The node's web app: its REST API under ``/api`` plus the dashboard, a static page that calls the API.

The dashboard is plain HTML, CSS and JavaScript shipped in ``web/static`` (no
build step, no CDN: it works offline).  It holds the user's API token in the
browser's session storage and sees exactly what that token's role may see.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from jointly.node.api.app import create_api
from jointly.node.services.base import NodeServices

STATIC = Path(__file__).parent / "static"


def create_app(services: NodeServices) -> FastAPI:
    """The REST API of ``services`` with the dashboard mounted at ``/ui``."""
    app = create_api(services)
    if (STATIC / "index.html").is_file():
        app.mount("/ui", StaticFiles(directory=STATIC, html=True), name="dashboard")

        @app.get("/", include_in_schema=False)
        def _root() -> RedirectResponse:
            return RedirectResponse("/ui/")

        @app.get("/favicon.ico", include_in_schema=False)
        def _icon() -> FileResponse:
            return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    return app
