"""The browser page: a cohort browser and slice viewer, plain HTML/CSS/JS with no build step.

``mount_web(app)`` serves ``static/index.html`` at ``/`` and the rest of ``static/`` under
``/static/``. These routes carry no auth: the page holds no data, and every data request it
makes goes to the ``/v1`` routes with the user's bearer token (docs/web.md).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["STATIC_DIR", "mount_web"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

# The page runs only its own scripts and talks only to its own origin; images arrive as blob:
# URLs because they are fetched with the Authorization header.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate so a new server version's page is picked up (ETag makes that cheap).
    "Cache-Control": "no-cache",
}


class _StaticFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_SECURITY_HEADERS)
        return response


async def _index(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers=_SECURITY_HEADERS)


def mount_web(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files at ``/static/`` (no auth; the data routes keep theirs)."""
    app.add_api_route("/", _index, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount("/static", _StaticFiles(directory=STATIC_DIR, check_dir=True), name="static")
