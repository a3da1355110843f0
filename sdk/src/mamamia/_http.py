"""The SDK's HTTP boundary: retries, auth, and problem+json → typed exceptions, in one place."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import httpx

from mamamia._errors import MamamiaError, QueryError, TransportError, error_class
from mamamia._pieces import RangeAnswer

__all__ = ["ApiClient", "error_for_problem"]

_RETRY_STATUSES = {429, 502, 503}

#: Ranges per request at most: servers answer more with the whole file (Starlette: 100).
_MAX_RANGES = 100


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
        answer: Collection[int] = (),
        **kwargs: Any,
    ) -> httpx.Response | None:
        """Send with retries; return the response (None for an allowed 404, the response for a
        status in ``answer``) or raise typed."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            response: httpx.Response | None = None
            try:
                self.requests_sent += 1
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                last = exc
            else:
                if response.status_code < 400 or response.status_code in answer:
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

    def get_ranges(self, path: str, ranges: Sequence[tuple[int, int]]) -> RangeAnswer | None:
        """Byte ranges of one file in one request (``Range: bytes=a-b,c-d,-n``; a negative
        start is a suffix of ``length`` bytes), None for a 404.

        A 206 is one range (``Content-Range``) or several (``multipart/byteranges``); a 200 is
        the whole file (a server or proxy without ranges). A refused multi-range request (400,
        416) is sent again one range per request; a range past the end reads as no bytes.
        """
        if len(ranges) > _MAX_RANGES:
            parts: list[bytes] = []
            for at in range(0, len(ranges), _MAX_RANGES):
                got = self.get_ranges(path, ranges[at : at + _MAX_RANGES])
                if got is None or got.whole is not None:
                    return got
                parts.extend(got.parts or ())
            return RangeAnswer(parts=tuple(parts))
        header = "bytes=" + ",".join(
            f"-{length}" if start < 0 else f"{start}-{start + length - 1}"
            for start, length in ranges
        )
        response = self.request(
            "GET", path, allow_404=True, answer=(400, 416), headers={"Range": header}
        )
        if response is None:
            return None
        if response.status_code in (400, 416):
            if len(ranges) > 1:
                parts = []
                for one in ranges:
                    got = self.get_ranges(path, [one])
                    if got is None:
                        return None
                    if got.whole is not None:
                        return got
                    parts.extend(got.parts or ())
                return RangeAnswer(parts=tuple(parts))
            if response.status_code == 416:
                return RangeAnswer(parts=(b"",))
            raise error_for_problem(response.status_code, _problem(response), path)
        if response.status_code == 200:
            return RangeAnswer(whole=response.content)
        if response.status_code != 206:
            raise TransportError(
                f"{self.url}{path}: HTTP {response.status_code} to a Range request"
            )
        sent = _ranges_of(response, f"{self.url}{path}")
        return RangeAnswer(parts=tuple(_cut(sent, start, length) for start, length in ranges))

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


#: One range a 206 answer holds: (first byte, its bytes, the file's size or None).
_Sent = tuple[int, bytes, "int | None"]


def _content_range(value: str, where: str) -> tuple[int, int, int | None]:
    """(first, last, size) of ``Content-Range: bytes first-last/size`` (size ``*``: None)."""
    unit, _, rest = value.strip().partition(" ")
    span, _, size = rest.partition("/")
    first, _, last = span.partition("-")
    try:
        if unit.lower() != "bytes":
            raise ValueError(unit)
        return int(first), int(last), None if size.strip() == "*" else int(size)
    except ValueError:
        raise TransportError(f"{where}: malformed Content-Range {value[:80]!r}") from None


def _ranges_of(response: httpx.Response, where: str) -> list[_Sent]:
    """The ranges of a 206: its one ``Content-Range``, or each part of a multipart body."""
    kind = response.headers.get("content-type", "")
    if not kind.lower().startswith("multipart/byteranges"):
        first, last, size = _content_range(response.headers.get("content-range", ""), where)
        body = response.content
        if len(body) != last - first + 1:
            raise TransportError(f"{where}: a 206 of {len(body)} bytes for {first}-{last}")
        return [(first, body, size)]
    boundary = ""
    for param in kind.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        raise TransportError(f"{where}: multipart/byteranges without a boundary")
    body = response.content
    opening = b"--" + boundary.encode("latin-1")
    sent: list[_Sent] = []
    at = 0
    while True:
        at = body.find(opening, at)
        if at < 0 or body.startswith(b"--", at + len(opening)):
            break  # the closing delimiter (or a truncated body: the ranges found so far)
        head_end = body.find(b"\r\n\r\n", at)
        if head_end < 0:
            raise TransportError(f"{where}: a multipart/byteranges part without a body")
        headers = body[at + len(opening) : head_end].decode("latin-1").split("\r\n")
        found = [h.partition(":")[2] for h in headers if h.lower().startswith("content-range:")]
        if not found:
            raise TransportError(f"{where}: a multipart/byteranges part without Content-Range")
        first, last, size = _content_range(found[0], where)
        start = head_end + 4
        # The part's length comes from its Content-Range: its bytes may contain anything.
        data = body[start : start + last - first + 1]
        if len(data) != last - first + 1:
            raise TransportError(f"{where}: a multipart/byteranges part is truncated")
        sent.append((first, data, size))
        at = start + len(data)
    return sent


def _cut(sent: Sequence[_Sent], start: int, length: int) -> bytes:
    """The asked range's bytes from the ranges a 206 holds (a server may merge ranges)."""
    if start < 0:
        sizes = [size for _first, _data, size in sent if size is not None]
        if not sizes:
            raise TransportError("a suffix range was answered without the file's size")
        start = max(0, sizes[0] - length)
        length = min(length, sizes[0])
    for first, data, _size in sent:
        if first <= start and start + length <= first + len(data):
            return data[start - first : start - first + length]
    # Past the end of the file: as many bytes as there are (the reader reports truncation).
    for first, data, _size in sent:
        if first <= start < first + len(data):
            return data[start - first :]
    return b""
