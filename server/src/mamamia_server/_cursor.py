"""Opaque, signed page cursors: the query, its parameters, the catalog version and the offset.

A cursor is ``base64url(json).base64url(hmac)``. The signature stops clients from forging
offsets or swapping the query under a cursor; the version inside makes a later page of a
catalog that has since changed a 409, never a page of different data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from mamamia_server._problem_responses import ApiError

__all__ = ["decode_cursor", "encode_cursor"]

_MAC_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(payload: dict[str, Any], key: bytes) -> str:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()
    mac = hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{_b64(body)}.{_b64(mac)}"


def decode_cursor(token: str, key: bytes) -> dict[str, Any]:
    """The payload of a cursor this server signed, or a 400 problem."""
    bad = ApiError(
        400, "the cursor is not one this server issued (or it was altered)", slug="bad-cursor"
    )
    if not isinstance(token, str) or token.count(".") != 1 or len(token) > 200_000:
        raise bad
    body_text, mac_text = token.split(".")
    try:
        body = _unb64(body_text)
        mac = _unb64(mac_text)
    except ValueError as exc:
        raise bad from exc
    expected = hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]
    if not hmac.compare_digest(mac, expected):
        raise bad
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise bad from exc
    if not isinstance(payload, dict):
        raise bad
    return payload
