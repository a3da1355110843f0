"""``create_app(settings)``: the FastAPI app over one catalog folder (no import-time state)."""

from __future__ import annotations

import secrets
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mamamia.sqlguard import QueryLimits
from mamamia_server._api_docs import mount_api_docs
from mamamia_server._auth import TOKEN_QUERY_NAMES, require_token
from mamamia_server._body_limit import BodyLimit
from mamamia_server._catalog_source import catalog_source
from mamamia_server._catalog_state import CatalogHolder
from mamamia_server._fast_crop import FastCrops
from mamamia_server._formats import warm_up
from mamamia_server._preview_limits import PreviewGate, PreviewLimits
from mamamia_server._problem_responses import (
    PROBLEM_MEDIA_TYPE,
    ProblemDetails,
    install_problem_handlers,
    problem_response,
)
from mamamia_server._settings import ServerSettings
from mamamia_server.routes import cases, catalog, health, query, zarr
from mamamia_server.web import mount_web

__all__ = ["create_app", "create_app_from_env"]

#: Largest request body: queries are small (MAX_QUERY_CHARS of SQL and a few parameters).
_MAX_BODY_BYTES = 2 * 2**20

_EXPOSED_HEADERS = [
    "X-Catalog-Version",
    "X-Total-Rows",
    "X-Truncated",
    "X-Next-Cursor",
    "X-Shape",
    "X-Dtype",
    "X-Byte-Order",
    "X-Spacing-XYZ",
    "X-Origin-XYZ",
    "X-Direction",
    "X-Start-ZYX",
    "ETag",
    "Content-Range",
]


def _package_version() -> str:
    try:
        return version("mamamia-server")
    except PackageNotFoundError:  # pragma: no cover - a source checkout without metadata
        return "0"


class _VersionHeader:
    """Adds ``X-Catalog-Version`` to every response and refuses tokens in query strings."""

    def __init__(self, app: ASGIApp, holder: CatalogHolder) -> None:
        self.app = app
        self.holder = holder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            names = {name.lower() for name, _ in parse_qsl(query, keep_blank_values=True)}
            if names & TOKEN_QUERY_NAMES:
                request = Request(scope)
                response = problem_response(
                    request,
                    400,
                    "tokens are accepted only in the Authorization header, never in the URL "
                    "(URLs end up in logs); send 'Authorization: Bearer <token>'",
                    slug="token-in-url",
                )
                await self._with_header(response, scope, receive, send)
                return

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                state = scope.get("state") or {}
                current = state.get("catalog_version") or self.holder.peek().version
                headers = list(message.get("headers", []))
                headers.append((b"x-catalog-version", str(current).encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_version)

    async def _with_header(self, response: Any, scope: Scope, receive: Receive, send: Send) -> None:
        response.headers["X-Catalog-Version"] = self.holder.peek().version
        await response(scope, receive, send)


def _limits(settings: ServerSettings) -> QueryLimits:
    return QueryLimits(
        max_rows=settings.max_row_limit,
        time_limit_ms=settings.query_time_limit_ms,
        memory_limit=settings.query_memory_limit,
        threads=settings.query_threads,
        max_query_chars=settings.max_query_chars,
    )


def _problem_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document with every error declared as application/problem+json."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = ProblemDetails.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    problem_content = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, response in list(responses.items()):
                if code.isdigit() and int(code) >= 400:
                    response["content"] = dict(problem_content)
            # Malformed requests and unknown parameters are refused before any route runs.
            for code, text in (("400", "Bad request."), ("422", "Invalid parameter.")):
                responses.setdefault(code, {"description": text, "content": dict(problem_content)})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    app.openapi_schema = schema
    return schema


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """The server app for ``settings.catalog`` (env vars ``MAMAMIA_SERVER_*`` if not given)."""
    settings = settings if settings is not None else ServerSettings()
    # A folder, or a catalog on object storage (docs/scaling.md: tables mirrored, chunks fetched).
    source = catalog_source(settings.catalog)
    holder = CatalogHolder(source, _limits(settings), poll_s=settings.catalog_poll_s)
    root = holder.root
    tokens = settings.load_tokens()

    app = FastAPI(
        title="mamamia",
        version=_package_version(),
        description="Cohorts (safe SQL), crops, slice previews and the Zarr store of a "
        "mamamia catalog of the MAMA-MIA breast DCE-MRI dataset (CC BY-NC 4.0).",
        openapi_url="/openapi.json",
        docs_url=None,  # served by mount_api_docs, from the package rather than a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.holder = holder
    app.state.tokens = frozenset(t.encode("utf-8") for t in tokens)
    app.state.signing_key = (
        settings.cursor_secret.encode("utf-8")
        if settings.cursor_secret
        else secrets.token_bytes(32)
    )
    app.state.scrub_roots = (str(root), str(settings.catalog))
    install_problem_handlers(app)
    warm_up()

    app.include_router(health.router)
    data = [Depends(require_token)]
    for module in (catalog, query, cases, zarr):
        app.include_router(module.router, dependencies=data)
    mount_web(app)  # the browser page at / and /static/ (no token: it holds no data)
    mount_api_docs(app, title=app.title)

    if settings.fast_crops:
        # Innermost of ours: the version header, body limits and CORS still wrap its answers.
        app.add_middleware(
            FastCrops, holder=holder, voxel_cap=settings.crop_voxel_cap, auth=bool(tokens)
        )
    app.add_middleware(
        PreviewGate,
        limits=PreviewLimits(
            settings.preview_concurrency, settings.preview_queue, settings.preview_wait_s
        ),
    )
    app.add_middleware(BodyLimit, max_bytes=_MAX_BODY_BYTES)
    app.add_middleware(_VersionHeader, holder=holder)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_credentials=False,
            allow_methods=["GET", "HEAD", "POST"],
            allow_headers=["Authorization", "Content-Type", "Range", "If-None-Match", "Accept"],
            expose_headers=_EXPOSED_HEADERS,
            max_age=600,
        )
    app.openapi = lambda: _problem_openapi(app)  # type: ignore[method-assign]
    return app


def create_app_from_env() -> FastAPI:
    """``create_app`` with settings from ``MAMAMIA_SERVER_*`` only (uvicorn ``--factory``)."""
    return create_app(ServerSettings())
