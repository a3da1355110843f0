"""mamamia_server: the HTTP server over a mamamia catalog."""

from __future__ import annotations

__all__: list[str] = []
