"""``/v1/zarr/{path}``: the catalog's ``volumes/`` Zarr store, read-only, for direct chunk reads.

Paths are relative to the catalog's ``volumes/`` folder, so a volume row's ``zarr_path``
``volumes/<CASE>/<GEN>.zarr/0`` is ``/v1/zarr/<CASE>/<GEN>.zarr/0``. Generations never change
once written, so every file is served with an ETag and ``Cache-Control: immutable``; Range
requests get 206 (Starlette's FileResponse): one range or a suffix with ``Content-Range``,
several as ``multipart/byteranges`` (the SDK reads a shard's index, then a box's inner chunks
in one request). Nothing outside ``volumes/`` is reachable.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from mamamia_server._deps import StateDep
from mamamia_server._file_response import ProblemFileResponse
from mamamia_server._problem_responses import ApiError, problem_responses

__all__ = ["router"]

router = APIRouter(tags=["zarr"])

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_IMMUTABLE = "public, max-age=31536000, immutable"


def _etag(info: os.stat_result, relative: str) -> str:
    base = f"{relative}:{info.st_size}:{info.st_mtime_ns}".encode()
    return '"' + hashlib.sha256(base).hexdigest()[:32] + '"'


def _not_found(relative: str) -> ApiError:
    return ApiError(
        404, f"no file {relative[:200]!r} in the catalog's Zarr store", slug="not-found"
    )


@router.get(
    "/v1/zarr/{path:path}",
    response_class=Response,
    responses={
        200: {
            "description": "The file: zarr.json metadata or a chunk.",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {}},
            },
        },
        206: {
            "description": "A byte range of the file.",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        304: {"description": "Not modified (If-None-Match matched the ETag)."},
        **problem_responses(400, 401, 404, 409, 416, 422),
    },
)
def zarr_file(
    request: Request,
    state: StateDep,
    path: Annotated[str, Path(max_length=1024, description="A path under the catalog's volumes/.")],
) -> Response:
    """One file of the Zarr store (metadata or chunk), with ETag and Range support."""
    parts = [part for part in path.split("/") if part != ""]
    if not parts or any(not _SEGMENT.match(part) or set(part) == {"."} for part in parts):
        raise _not_found(path)
    base = (state.root / "volumes").resolve()
    target = (base / "/".join(parts)).resolve()
    if not target.is_relative_to(base):
        raise _not_found(path)
    # A catalog on object storage: bring the file into the local cache first.
    state.ensure_file("volumes/" + "/".join(parts))
    try:
        info = os.stat(target)
    except OSError:
        raise _not_found(path) from None
    if not stat.S_ISREG(info.st_mode):
        raise _not_found(path)
    relative = "/".join(parts)
    etag = _etag(info, relative)
    headers = {"ETag": etag, "Cache-Control": _IMMUTABLE}
    match = request.headers.get("if-none-match")
    if match is not None and (
        match.strip() == "*" or etag in [m.strip() for m in match.split(",")]
    ):
        return Response(status_code=304, headers=headers)
    media = "application/json" if parts[-1] == "zarr.json" else "application/octet-stream"
    return ProblemFileResponse(target, media_type=media, headers=headers, stat_result=info)


# HEAD answers like GET without a body (zarr clients probe with it); one operation in the OpenAPI.
router.add_api_route("/v1/zarr/{path:path}", zarr_file, methods=["HEAD"], include_in_schema=False)
