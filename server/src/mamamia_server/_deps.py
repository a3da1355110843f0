"""FastAPI dependencies shared by the routes (``Annotated`` aliases)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.concurrency import run_in_threadpool

import mamamia
from mamamia_server._catalog_state import CatalogHolder, CatalogState
from mamamia_server._settings import ServerSettings

__all__ = ["VERSION_PATTERN", "HolderDep", "SettingsDep", "StateDep", "take_state"]

VERSION_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"


# Dependencies are async where they never block: FastAPI runs sync ones in the thread pool, and
# each such hop costs about a millisecond per request.


async def _settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


async def _holder(request: Request) -> CatalogHolder:
    holder: CatalogHolder = request.app.state.holder
    return holder


def take_state(request: Request, version: str | None = None) -> CatalogState:
    """The one state this request answers from (pinned to ``version`` if given, else 409)."""
    holder: CatalogHolder = request.app.state.holder
    try:
        state = holder.pinned(version)
    except mamamia.CatalogVersionMismatch:
        request.state.catalog_version = holder.peek().version
        raise
    request.state.catalog_version = state.version
    return state


async def _state(
    request: Request,
    version: Annotated[
        str | None,
        Query(
            description="Answer only from this catalog version (409 if it is no longer served).",
            pattern=VERSION_PATTERN,
        ),
    ] = None,
) -> CatalogState:
    holder: CatalogHolder = request.app.state.holder
    if holder.due(version):  # may read catalog.json and load a new version: off the loop
        return await run_in_threadpool(take_state, request, version)
    state = holder.peek()  # checked within the poll interval and of the asked version
    request.state.catalog_version = state.version
    return state


SettingsDep = Annotated[ServerSettings, Depends(_settings)]
HolderDep = Annotated[CatalogHolder, Depends(_holder)]
StateDep = Annotated[CatalogState, Depends(_state)]
