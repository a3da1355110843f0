"""A ``FileResponse`` whose Range errors are problem+json like every other error.

Starlette answers a malformed ``Range`` with a ``text/plain`` 400 and an unsatisfiable one with
an empty 416; the header is checked here first, with Starlette's own parser (so what it accepts
is exactly what it then serves), and refused with a Problem.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable
from starlette.types import Receive, Scope, Send

from mamamia_server._problem_responses import problem_response

__all__ = ["ProblemFileResponse"]


class ProblemFileResponse(FileResponse):
    """``FileResponse`` (needs ``stat_result``) with problem+json 400/416 for bad ranges."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        http_range = headers.get("range")
        if_range = headers.get("if-range")
        if (
            scope["type"] == "http"
            and self.status_code == 200
            and http_range is not None
            and scope["method"].upper() in ("GET", "HEAD")
            and (if_range is None or self._should_use_range(if_range))
            and self.stat_result is not None
        ):
            size = self.stat_result.st_size
            try:
                self._parse_range_header(http_range, size)
            except MalformedRangeHeader as exc:
                why = str(exc.content) if exc.content else "not a 'bytes=start-end' range"
                response = problem_response(
                    Request(scope),
                    400,
                    f"Range header {http_range[:100]!r} is malformed: {why}",
                    slug="bad-range",
                )
                await response(scope, receive, send)
                return
            except RangeNotSatisfiable:
                response = problem_response(
                    Request(scope),
                    416,
                    f"Range header {http_range[:100]!r} starts past the end of the file "
                    f"({size} bytes)",
                    slug="range-not-satisfiable",
                    headers={"Content-Range": f"bytes */{size}"},
                )
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
