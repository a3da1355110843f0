"""Optional bearer-token auth for the data routes.

With no token configured every route is open. Once tokens exist (env list or token file),
every data route needs ``Authorization: Bearer <token>``; health and the web page do not.
Tokens are only read from the header, compared in constant time, and never logged.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mamamia_server._problem_responses import ApiError

__all__ = ["TOKEN_QUERY_NAMES", "require_token"]

#: Query-string names a token must never travel in (URLs end up in access logs and histories).
TOKEN_QUERY_NAMES = frozenset({"token", "access_token", "api_key", "apikey", "auth", "bearer"})

_bearer = HTTPBearer(
    auto_error=False,
    description="A token from the server's token file or MAMAMIA_SERVER_TOKENS, when set.",
)


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Let the request through if auth is off or it carries a configured token."""
    tokens: frozenset[bytes] = request.app.state.tokens
    if not tokens:
        return
    challenge = {"WWW-Authenticate": 'Bearer realm="mamamia"'}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(
            401,
            "this server needs a bearer token: send the header 'Authorization: Bearer <token>'",
            slug="unauthorized",
            headers=challenge,
        )
    given = credentials.credentials.encode("utf-8", "surrogateescape")
    # Compare against every token (no early exit), each in constant time.
    matched = False
    for token in tokens:
        matched |= secrets.compare_digest(given, token)
    if not matched:
        raise ApiError(
            401,
            "the bearer token is not accepted by this server",
            slug="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="mamamia", error="invalid_token"'},
        )
