"""``GET /v1/health``: is the server up, and which catalog version does it serve."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from mamamia_server._deps import HolderDep
from mamamia_server._problem_responses import problem_responses

__all__ = ["Health", "router"]

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str = Field(description="'ok' while a catalog is served.")
    catalog_version: str
    reload_error: str | None = Field(
        default=None,
        description="Why the newest catalog.json could not be loaded (the previous one is "
        "still served), or null.",
    )


@router.get("/v1/health", response_model=Health, responses=problem_responses(400, 500))
async def health(request: Request, holder: HolderDep) -> Health:
    """Liveness and the served catalog version (no token needed)."""
    # On the event loop, not in the worker threads busy previews and queries hold; only a
    # due check of catalog.json (a stat, at most every poll interval) goes to a thread.
    state = await run_in_threadpool(holder.current) if holder.due() else holder.peek()
    request.state.catalog_version = state.version
    error = holder.last_error
    return Health(
        status="ok",
        catalog_version=state.version,
        reload_error=None if error is None else error.split(":", 1)[0],
    )
