"""``/docs``: Swagger UI from the ``fastapi-offline`` package's files, so it works offline.

FastAPI's default page loads Swagger UI from a CDN, which leaves it blank on the offline
hospital and cluster machines the server often runs on; here every asset comes from the app.
Swagger UI 5 (what that package ships) reads the OpenAPI 3.1 document FastAPI writes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["ASSETS_PATH", "mount_api_docs"]

#: where the Swagger UI files are served (no token: they hold no data)
ASSETS_PATH = "/docs/assets"


def _assets() -> Path:
    """The folder of Swagger UI's files inside the installed ``fastapi-offline``."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the fastapi-offline package is missing: pip install fastapi-offline")
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    if not (folder / "swagger-ui-bundle.js").is_file():
        raise RuntimeError(f"{folder}: no Swagger UI files found")
    return folder


def mount_api_docs(app: FastAPI, *, title: str) -> None:
    """Serve ``/docs`` (the page) and ``/docs/assets/`` (its scripts and styles) from the app."""
    app.mount(ASSETS_PATH, StaticFiles(directory=_assets()), name="api-docs-assets")

    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} - API docs",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
        )

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
