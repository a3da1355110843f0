"""The SDK's HTTP boundary: retries, auth, and problem+json → typed exceptions, in one place."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from typing import Any

import httpx

from mamamia._errors import MamamiaError, QueryError, TransportError, error_class

__all__ = ["ApiClient", "error_for_problem"]

_RETRY_STATUSES = {429, 502, 503}


def error_for_problem(status: int, body: Mapping[str, Any], path: str) -> MamamiaError:
    """The SDK exception for one problem response of the server (see ``error_class``)."""
    detail = str(body.get("detail") or body.get("title") or f"HTTP {status}")
    message = f"{detail} ({status} from {path})"
    kind = error_class(status, body.get("type"), query_route=path.startswith("/v1/query"))
    if issubclass(kind, QueryError):
        # The query's own text only: the same mistake reads the same as on a local catalog.
        return kind(detail, rule=str(body.get("rule") or "query"))
    return kind(message)


class ApiClient:
    """A small wrapper over ``httpx.Client`` with bounded retries and typed errors."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        retries: int = 4,
        backoff_s: float = 0.25,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"User-Agent": "mamamia-sdk"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self.retries = retries
        self.backoff_s = backoff_s
        #: requests sent, for tests and diagnostics
        self.requests_sent = 0

    def close(self) -> None:
        self._client.close()

    def _sleep(self, attempt: int, response: httpx.Response | None) -> None:
        wait = self.backoff_s * (2**attempt) * (0.5 + random.random())
        if response is not None:
            retry_after = response.headers.get("retry-after", "")
            if retry_after.isdigit():
                wait = max(wait, min(float(retry_after), 30.0))
        time.sleep(wait)

    def request(
        self,
        method: str,
        path: str,
        *,
        allow_404: bool = False,
        **kwargs: Any,
    ) -> httpx.Response | None:
        """Send with retries; return the response (None for an allowed 404) or raise typed."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            response: httpx.Response | None = None
            try:
                self.requests_sent += 1
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                last = exc
            else:
                if response.status_code < 400:
                    return response
                if response.status_code == 404 and allow_404:
                    return None
                if response.status_code not in _RETRY_STATUSES:
                    raise error_for_problem(response.status_code, _problem(response), path)
                last = error_for_problem(response.status_code, _problem(response), path)
            if attempt < self.retries:
                self._sleep(attempt, response)
        if isinstance(last, MamamiaError):
            raise last
        raise TransportError(
            f"{self.url}{path}: no answer after {self.retries + 1} attempts ({last})"
        ) from last

    def get_json(self, path: str, **kwargs: Any) -> Any:
        response = self.request("GET", path, **kwargs)
        assert response is not None
        return response.json()


def _problem(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return {"detail": response.text[:300]}
    return body if isinstance(body, Mapping) else {"detail": str(body)[:300]}
