"""Previews cannot exhaust memory: a bounded number render at once, a bounded number wait.

A 2048-pixel ``slice.png`` with ``phase=sub`` and an overlay holds ~50 MB of planes while it
renders, so memory grew with the number of concurrent previews: forty of them took the server
past 1 GB and starved every other route of worker threads. This ASGI gate lets
``preview_concurrency`` previews render, keeps up to ``preview_queue`` more waiting on the event
loop (not in a worker thread), and answers the rest at once with a problem+json 503 and
``Retry-After``. A waiter that is not admitted within ``preview_wait_s`` gets the same answer.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from mamamia_server._problem_responses import problem_response

__all__ = ["PreviewGate", "PreviewLimits"]

_PREVIEW_PATH = re.compile(r"^/v1/cases/[^/]+/slice\.png$")


@dataclass(frozen=True, slots=True)
class PreviewLimits:
    """How many previews render at once, how many may wait, and for how long."""

    concurrency: int = 2
    queue: int = 8
    wait_s: float = 10.0

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.queue < 0 or not self.wait_s > 0:
            raise ValueError(f"invalid preview limits {self!r}")


class PreviewGate:
    """ASGI middleware gating ``/v1/cases/{id}/slice.png`` by ``PreviewLimits``."""

    def __init__(self, app: ASGIApp, limits: PreviewLimits) -> None:
        self.app = app
        self.limits = limits
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _PREVIEW_PATH.match(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        if self._slots is None:  # created on the serving loop
            self._slots = asyncio.Semaphore(self.limits.concurrency)
        slots = self._slots
        if slots.locked() and self._waiting >= self.limits.queue:
            await self._busy(scope, receive, send, "the preview queue is full")
            return
        self._waiting += 1
        try:
            await asyncio.wait_for(slots.acquire(), self.limits.wait_s)
        except TimeoutError:
            await self._busy(
                scope, receive, send, f"no preview slot freed within {self.limits.wait_s:g} s"
            )
            return
        finally:
            self._waiting -= 1
        try:
            await self.app(scope, receive, send)
        finally:
            slots.release()

    async def _busy(self, scope: Scope, receive: Receive, send: Send, why: str) -> None:
        retry = max(1, math.ceil(self.limits.wait_s / 4))
        response = problem_response(
            Request(scope),
            503,
            f"{why}: this server renders {self.limits.concurrency} previews at a time and "
            f"queues {self.limits.queue}; retry after {retry} s",
            slug="preview-busy",
            headers={"Retry-After": str(retry)},
        )
        await response(scope, receive, send)
