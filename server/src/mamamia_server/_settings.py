"""Server settings: every knob from an environment variable prefixed ``MAMAMIA_SERVER_``.

``ServerSettings()`` reads the environment; ``ServerSettings(catalog=...)`` overrides it. The
names and defaults are documented in docs/server.md (one table, same order as here).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["ENV_PREFIX", "ServerSettings", "is_loopback"]

ENV_PREFIX = "MAMAMIA_SERVER_"


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_list(value: object) -> object:
    # Env vars hold comma-separated lists; JSON lists from code pass through.
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class ServerSettings(BaseSettings):
    """How one server process serves one catalog folder."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    catalog: Path = Field(default=Path("."), description="The catalog folder (holds catalog.json).")
    host: str = Field(default="127.0.0.1", description="Address to bind.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port (0 picks a free one).")
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes.")

    default_row_limit: int = Field(
        default=1000, ge=1, description="Rows per query page when the request gives no limit."
    )
    max_row_limit: int = Field(
        default=100_000, ge=1, description="The largest page a request may ask for."
    )
    query_time_limit_ms: int = Field(
        default=5000, ge=10, description="Wall-clock limit of one query (504 past it)."
    )
    query_memory_limit: str = Field(
        default="1GB", description="DuckDB memory_limit for the query engine."
    )
    query_threads: int = Field(default=2, ge=1, le=256, description="DuckDB threads.")
    max_query_chars: int = Field(
        default=20_000, ge=16, description="Longest SQL or WHERE text accepted (413 past it)."
    )

    crop_voxel_cap: int = Field(
        default=256**3, ge=1, description="Most voxels one crop may return (413 past it)."
    )
    fast_crops: bool = Field(
        default=True,
        description="Answer plain crop requests on a lean ASGI path (the same answers, about "
        "1.5 ms less per request); false sends every crop through the FastAPI route.",
    )
    slice_max_size: int = Field(
        default=2048, ge=16, description="Largest slice.png edge in pixels a request may ask for."
    )
    preview_max_pixels: int = Field(
        default=2048 * 2048,
        ge=256,
        description="Most pixels (rows x columns) one slice.png may have (413 past it).",
    )
    preview_concurrency: int = Field(
        default=2, ge=1, le=256, description="slice.png previews rendered at the same time."
    )
    preview_queue: int = Field(
        default=8,
        ge=0,
        le=10_000,
        description="Previews that may wait for a slot; past it a preview gets 503 with "
        "Retry-After at once.",
    )
    preview_wait_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="Longest wait of a queued preview for a slot (then 503 with Retry-After).",
    )

    tokens: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Bearer tokens, comma-separated. With tokens or a token file, data routes need one.",
    )
    token_file: Path | None = Field(
        default=None, description="A file with one bearer token per line (# comments allowed)."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins allowed by CORS, comma-separated. Empty: CORS off.",
    )
    cursor_secret: str = Field(
        default="",
        description="Key that signs cursors; empty: a random one per process (the CLI shares "
        "one across workers).",
    )
    catalog_poll_s: float = Field(
        default=1.0,
        ge=0.0,
        description="How often (seconds) a request checks catalog.json for a new version.",
    )

    @field_validator("tokens", "cors_origins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _split_list(value)

    @model_validator(mode="after")
    def _check_limits(self) -> Self:
        if self.default_row_limit > self.max_row_limit:
            raise ValueError(
                f"default_row_limit ({self.default_row_limit}) is over max_row_limit "
                f"({self.max_row_limit})"
            )
        return self

    def load_tokens(self) -> frozenset[str]:
        """Every accepted token: the env list plus the token file's lines."""
        found = {token for token in self.tokens if token}
        if self.token_file is not None:
            try:
                text = self.token_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(
                    f"{ENV_PREFIX}TOKEN_FILE: cannot read the token file {self.token_file}: "
                    f"{exc.strerror or exc}"
                ) from exc
            for line in text.splitlines():
                token = line.split("#", 1)[0].strip()
                if token:
                    found.add(token)
            if not found:
                raise ValueError(f"{ENV_PREFIX}TOKEN_FILE: {self.token_file} holds no token")
        return frozenset(found)
