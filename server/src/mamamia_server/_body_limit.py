"""Request bodies over the limit get a problem+json 413, with or without a Content-Length.

A chunked body announces no length, and an error raised while the route reads it becomes
FastAPI's generic 400 ("error parsing the body"); so such a body is read here first, up to the
limit, and replayed to the app. Memory stays bounded by the limit.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mamamia_server._problem_responses import problem_response

__all__ = ["BodyLimit"]


class BodyLimit:
    """ASGI middleware: 413 for any request body over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        chunked = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if length is None and not chunked:  # no body at all (GET, HEAD, ...)
            await self.app(scope, receive, send)
            return
        if length is not None:
            if length.isdigit() and int(length) > self.max_bytes:
                await self._refuse(
                    scope, receive, send, f"the request body has {int(length)} bytes"
                )
                return
            await self.app(scope, receive, send)  # the server holds it to its length
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, "the chunked request body is longer")
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, what: str) -> None:
        response = problem_response(
            Request(scope),
            413,
            f"{what}; the limit is {self.max_bytes} bytes",
            slug="body-too-large",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
