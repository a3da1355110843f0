"""``mamamia serve CATALOG``: run the server under uvicorn."""

from __future__ import annotations

import copy
import logging
import os
import re
import secrets
from pathlib import Path
from typing import Any

import click

from mamamia_server._settings import ENV_PREFIX, ServerSettings, is_loopback

__all__ = ["RedactTokens", "serve_command"]

_TOKEN_IN_QUERY = re.compile(
    r"(?i)([?&](?:token|access_token|api_key|apikey|auth|bearer)=)[^&\s\"]*"
)


class RedactTokens(logging.Filter):
    """Blanks token-like query parameters in log records (the server refuses them anyway)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_QUERY.sub(r"\1[redacted]", record.msg)
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging config with the token redaction on the access and error logs."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tokens"] = {"()": f"{__name__}.RedactTokens"}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("redact_tokens")
    return config


def _settings(catalog: Path, overrides: dict[str, Any]) -> ServerSettings:
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return ServerSettings(catalog=catalog, **given)
    except ValueError as exc:
        raise click.ClickException(f"invalid server settings: {exc}") from exc


@click.command("serve")
@click.argument("catalog", type=click.Path(path_type=Path, file_okay=False))
@click.option("--host", default=None, help="Address to bind [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="TCP port [default: 8000].")
@click.option("--workers", type=int, default=None, help="Worker processes [default: 1].")
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Bearer tokens, one per line; data routes then need one.",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
def serve_command(
    catalog: Path,
    host: str | None,
    port: int | None,
    workers: int | None,
    token_file: Path | None,
    log_level: str,
) -> None:
    """Serve the catalog folder CATALOG (or s3://bucket/prefix) over HTTP (settings:
    MAMAMIA_SERVER_* env vars)."""
    import uvicorn

    from mamamia_server._catalog_source import store_url

    remote = store_url(catalog)  # s3://bucket/prefix: checked when the app opens it
    if remote is None and not (catalog / "catalog.json").is_file():
        raise click.ClickException(
            f"{catalog}: no catalog.json here; build one with: mamamia ingest RAW {catalog}"
        )
    settings = _settings(
        catalog, {"host": host, "port": port, "workers": workers, "token_file": token_file}
    )
    try:
        tokens = settings.load_tokens()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if not tokens and not is_loopback(settings.host):
        click.echo(
            f"warning: serving on {settings.host} without authentication. The MAMA-MIA data is "
            "licensed CC BY-NC 4.0 and access to it is gated on Synapse: anyone who can reach "
            f"this address can read it. Set {ENV_PREFIX}TOKEN_FILE (or --token-file) or "
            f"{ENV_PREFIX}TOKENS to require a bearer token.",
            err=True,
        )
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": log_config(),
        "log_level": log_level,
        "proxy_headers": False,
        "server_header": False,
    }
    if settings.workers == 1:
        from mamamia_server._app import create_app

        try:
            app = create_app(settings)
        except Exception as exc:  # a damaged catalog: say which, without a traceback
            raise click.ClickException(f"cannot serve {catalog}: {exc}") from exc
        uvicorn.run(app, **common)
        return
    # Several workers import the app themselves: hand them the settings through the
    # environment, with one cursor key so a cursor from one worker is valid at another.
    env = {
        f"{ENV_PREFIX}CATALOG": remote or str(catalog.resolve()),
        f"{ENV_PREFIX}HOST": settings.host,
        f"{ENV_PREFIX}PORT": str(settings.port),
        f"{ENV_PREFIX}WORKERS": str(settings.workers),
    }
    if token_file is not None:
        env[f"{ENV_PREFIX}TOKEN_FILE"] = str(token_file.resolve())
    if not settings.cursor_secret:
        env[f"{ENV_PREFIX}CURSOR_SECRET"] = secrets.token_hex(32)
    os.environ.update(env)
    uvicorn.run(
        "mamamia_server._app:create_app_from_env",
        factory=True,
        workers=settings.workers,
        **common,
    )
