"""mamamia_server: the HTTP server over a mamamia catalog."""

from __future__ import annotations

from mamamia_server._app import create_app
from mamamia_server._settings import ServerSettings

__all__: list[str] = ["ServerSettings", "create_app"]
