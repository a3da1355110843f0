"""A lean path for the hottest request: ``GET /v1/cases/{id}/crop`` of an open volume.

A training client fetching random crops pays FastAPI's routing, dependency solving and
parameter validation on every request: about 1.5 ms on a 2-core machine, a
quarter of a 64^3 crop's whole time over HTTP (bench/bench_server.py). This middleware answers
the plain form of that request itself, with the route's own helpers, and hands everything else
to the app unchanged, so the route in ``routes/cases.py`` stays the one definition (and the one
documented in the OpenAPI schema). It falls through whenever its answer could differ in any
way from the route's:

- auth is on (the token check stays in one place), or the request pins ``version``;
- any query parameter it does not know, a repeated one, an escape other than ``%3A`` (``:``),
  ``format=nifti``;
- a value the route would refuse or read differently (phase outside ``0..999`` or with a
  leading zero, a range that ``parse_range`` refuses, a crop over the voxel cap, a phase the
  image lacks): the route then answers with its problem document;
- the catalog may need re-reading (the poll interval has passed), or the volume is not open yet
  (the route opens it off the event loop; later requests come here);
- anything raised while reading (a missing or damaged chunk): the route reads again and
  reports it the usual way.

``tests/test_server_fast_crop.py`` pins that both paths give the same status, headers and body.
"""

from __future__ import annotations

import re

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mamamia_schema import PATIENT_ID_PATTERN, VolumeKind
from mamamia_server._catalog_state import CatalogHolder
from mamamia_server._problem_responses import ApiError
from mamamia_server._volume_reads import crop_answer, parse_range

__all__ = ["FastCrops"]

_PATH = re.compile(rf"^/v1/cases/({PATIENT_ID_PATTERN[1:-1]})/crop$")
_QUERY_CHARS = re.compile(rb"^[A-Za-z0-9=&:_%]*$")
_KNOWN = frozenset({"kind", "phase", "z", "y", "x", "format"})
_PHASE = re.compile(r"^(0|[1-9][0-9]{0,2})$")
_KINDS = frozenset(k.value for k in VolumeKind)
_FORMATS = frozenset({"raw", "npy"})


class FastCrops:
    """ASGI middleware: plain crop requests of open volumes, answered without the framework."""

    def __init__(self, app: ASGIApp, holder: CatalogHolder, voxel_cap: int, auth: bool) -> None:
        self.app = app
        self.holder = holder
        self.voxel_cap = voxel_cap
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = None
        if scope["type"] == "http" and scope["method"] == "GET" and not self.auth:
            match = _PATH.match(scope["path"])
            if match is not None:
                try:
                    response = await self._answer(scope, match.group(1))
                except Exception:
                    response = None
        if response is None:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    async def _answer(self, scope: Scope, case_id: str) -> Response | None:
        raw_query: bytes = scope.get("query_string", b"")
        if not _QUERY_CHARS.match(raw_query) or self.holder.due(None):
            return None
        # Clients escape the ranges' colons (httpx sends z=10%3A74): that one escape is read.
        query = raw_query.decode("ascii").replace("%3A", ":").replace("%3a", ":")
        if "%" in query:
            return None
        params: dict[str, str] = {}
        for part in query.split("&") if query else ():
            name, sep, value = part.partition("=")
            if not sep or name not in _KNOWN or name in params:
                return None
            params[name] = value
        kind = params.get("kind", "image")
        fmt = params.get("format", "npy")
        phase_text = params.get("phase")
        if kind not in _KINDS or fmt not in _FORMATS or len(params.get("z", "")) > 21:
            return None
        if len(params.get("y", "")) > 21 or len(params.get("x", "")) > 21:
            return None
        if phase_text is not None and (kind != "image" or not _PHASE.match(phase_text)):
            return None
        state = self.holder.peek()
        volume = state.opened_volume(case_id, kind)
        if volume is None:
            return None
        nz, ny, nx = volume.spatial_shape
        try:
            (z0, z1), (y0, y1), (x0, x1) = (
                parse_range(params.get("z"), nz, "z"),
                parse_range(params.get("y"), ny, "y"),
                parse_range(params.get("x"), nx, "x"),
            )
        except ApiError:
            return None
        if (z1 - z0) * (y1 - y0) * (x1 - x0) > self.voxel_cap:
            return None
        phase = int(phase_text) if phase_text is not None else None
        if kind == "image" and (phase or 0) >= volume.shape[0]:
            return None
        box = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
        scope.setdefault("state", {})["catalog_version"] = state.version
        return await crop_answer(volume, kind, phase, box, fmt)
