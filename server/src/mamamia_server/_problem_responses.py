"""One error envelope for every error: RFC 9457 ``application/problem+json``.

``ApiError`` is what routes raise; ``install_problem_handlers`` maps it, FastAPI's validation
errors, Starlette's HTTP errors (unknown routes, 405) and every ``MamamiaError`` (the query
engine's included) to a Problem body in one place: an error's status and kind are its class's
attributes, which the SDK's client reads back. Details never carry server paths.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

import mamamia

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "ApiError",
    "ProblemDetails",
    "install_problem_handlers",
    "problem_response",
    "problem_responses",
    "scrub",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TYPE_BASE = mamamia.PROBLEM_TYPE_BASE


class ProblemDetails(BaseModel):
    """An RFC 9457 problem: what went wrong, for people and programs (``Problem`` in OpenAPI)."""

    model_config = ConfigDict(title="Problem")

    type: str = Field(description="A URI naming the kind of problem (urn:mamamia:problem:<slug>).")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request, in one or two sentences.")
    instance: str = Field(description="The request path the problem belongs to.")
    catalog_version: str | None = Field(
        default=None, description="The catalog version that answered, when one did."
    )
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Each invalid parameter (location and message), for 422."
    )
    rule: str | None = Field(
        default=None, description="For rejected queries: the check that refused it."
    )


class ApiError(Exception):
    """A request that cannot be answered; becomes a Problem with ``status``."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        headers: Mapping[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
        rule: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.rule = rule
        self.status = status
        self.detail = detail
        self.slug = slug or _default_slug(status)
        self.headers = dict(headers or {})
        self.errors = errors


def _default_slug(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")
    except ValueError:
        return "error"


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# Two or more /segments, except the API's own routes (/v1/...), which help the reader.
_ABS_PATH = re.compile(r"(?<![\w:])(?!/v1/)(?:/[^\s'\"/:,;()]+){2,}/?")


def scrub(text: str, roots: Iterable[str] = ()) -> str:
    """``text`` without the server's file paths (catalog roots first, then any absolute path)."""
    for root in sorted({r for r in roots if r}, key=len, reverse=True):
        text = text.replace(root.rstrip("/") + "/", "").replace(root, "<catalog>")
    return _ABS_PATH.sub("<path>", text)


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    headers: Mapping[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    rule: str | None = None,
) -> Response:
    """A problem+json response for ``request``."""
    version = getattr(request.state, "catalog_version", None)
    roots = getattr(request.app.state, "scrub_roots", ())
    body: dict[str, Any] = {
        "type": _TYPE_BASE + (slug or _default_slug(status)),
        "title": _title(status),
        "status": status,
        "detail": scrub(detail, roots),
        "instance": request.url.path,
    }
    if version is not None:
        body["catalog_version"] = version
    if errors is not None:
        body["errors"] = errors
    if rule is not None:
        body["rule"] = rule
    content = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
    return Response(content, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only where and what: the submitted input is not echoed (it may be large or sensitive).
    out = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        out.append({"loc": loc, "msg": str(error.get("msg", "")), "type": error.get("type")})
    return out


def _map_exception(exc: BaseException) -> ApiError | None:
    """The Problem of an error, from its class's ``status`` and ``slug`` (``mamamia._errors``)."""
    if not isinstance(exc, mamamia.MamamiaError) or not exc.exposed():
        return None
    if isinstance(exc, mamamia.QueryError):
        return ApiError(exc.status, exc.message, slug=exc.slug, rule=exc.rule)
    return ApiError(exc.status, str(exc) or type(exc).__name__, slug=exc.slug)


def install_problem_handlers(app: FastAPI) -> None:
    """Every error the app can produce answers with a Problem."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return problem_response(
            request,
            exc.status,
            exc.detail,
            slug=exc.slug,
            headers=exc.headers,
            errors=exc.errors,
            rule=exc.rule,
        )

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"][1:] or first["loc"]) or "request"
        return problem_response(
            request,
            422,
            f"invalid parameter {where}: {first['msg']}",
            slug="invalid-parameter",
            errors=errors,
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else _title(exc.status_code)
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such route; the API is described at /docs and /openapi.json"
        headers = dict(exc.headers or {})
        return problem_response(request, exc.status_code, detail, headers=headers)

    async def known_error(request: Request, exc: Exception) -> Response:
        mapped = _map_exception(exc)
        if mapped is None:
            return problem_response(request, 500, "internal server error", slug="internal")
        return await api_error(request, mapped)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(mamamia.MamamiaError, known_error)
    app.add_exception_handler(Exception, known_error)


_DESCRIPTIONS = {
    400: "Bad request: a rejected query or a malformed parameter.",
    401: "A bearer token is needed (or the one given is wrong).",
    404: "Unknown case, volume, table or path.",
    406: "None of the accepted media types can be produced.",
    409: "The request is pinned to a catalog version this server no longer serves.",
    413: "Over a size limit (crop voxels, preview pixels, rows, query length, request body).",
    416: "The byte range lies outside the file.",
    422: "A parameter is invalid or a range lies outside the volume.",
    500: "Internal error.",
    503: "The catalog cannot be read right now (a missing or corrupt chunk: catalog-damaged), "
    "or every preview slot is busy (preview-busy, with Retry-After).",
    504: "The query ran past the time limit.",
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries declaring Problem bodies for ``codes`` (OpenAPI)."""
    return {
        code: {
            "description": _DESCRIPTIONS.get(code, _title(code)),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code in codes
    }
