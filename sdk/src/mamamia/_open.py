"""Opening a Catalog: ``mamamia.open`` (a folder or ``s3://``) and ``mamamia.connect`` (a server).

Kept apart from the Catalog so the facade never imports its backends: imports run one way,
from here to the Catalog and each backend.
"""

from __future__ import annotations

import re
from pathlib import Path

from mamamia._catalog import Catalog
from mamamia._local import LocalBackend
from mamamia._objstore import ObjectStoreBackend, is_store_url
from mamamia._remote import RemoteBackend
from mamamia._store import DEFAULT_CACHE_MAX_BYTES

__all__ = ["connect", "open", "open_store", "server_url"]

# host:port (a name or an IPv4 address), optionally followed by a path: a server, not a folder.
_HOST_PORT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*:\d{1,5}(/.*)?$")


def server_url(location: str | Path) -> str | None:
    """The server URL ``location`` names, normalised, or None when it names a folder or store.

    ``http(s)://host:port`` as given; ``host:port`` (no scheme, and no such local folder) gets
    ``http://``; a trailing ``/v1`` (the API's prefix, which the SDK adds itself) is dropped.
    """
    text = str(location).strip()
    if not text.startswith(("http://", "https://")):
        if not _HOST_PORT.match(text) or Path(text).exists():
            return None
        text = "http://" + text
    text = text.rstrip("/")
    return text.removesuffix("/v1").rstrip("/")


def open(path: str | Path, *, cache_dir: str | Path | None = None, guard: bool = True) -> Catalog:
    """Open a local catalog folder (what ``mamamia ingest`` writes) or ``s3://bucket/prefix``.

    A server's URL (``http://host:port``, ``host:port``, with or without ``/v1``) is passed to
    :func:`connect`. A raw MAMA-MIA folder is refused with the ``mamamia ingest`` line to run.

    Queries pass the server's SQL guard (one SELECT over the catalog's tables and registered
    ones, allowed functions only), so local and remote answers and refusals agree.
    ``guard=False`` is for a user who trusts the SQL they run: any single SELECT (reading
    files with ``read_csv`` and the like), still never a statement that changes the catalog.

    For an object store, ``cache_dir`` (default ``$MAMAMIA_CACHE_DIR/s3_<bucket>_<prefix>``)
    holds the mirrored tables and the chunks read; see docs/scaling.md.
    """
    if is_store_url(path):
        return open_store(str(path), cache_dir=cache_dir)
    url = server_url(path)
    if url is not None:
        return connect(url, cache_dir=cache_dir)
    return Catalog(LocalBackend(path, guard=guard))


def open_store(
    url: str, *, cache_dir: str | Path | None = None, cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
) -> Catalog:
    """A Catalog over ``s3://bucket/prefix``, pinned to the version its catalog.json names."""
    return Catalog(ObjectStoreBackend(url, cache_dir=cache_dir, cache_max_bytes=cache_max_bytes))


def connect(
    url: str,
    token: str | None = None,
    cache_dir: str | Path | None = None,
    *,
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES,
    timeout: float = 60.0,
    retries: int = 4,
    version: str | None = None,
) -> Catalog:
    """A Catalog over a mamamia server, pinned to the version it serves now.

    ``version``: insist on this catalog version (CatalogVersionMismatch if the server has moved
    on), as DataLoader workers do to read exactly what their parent read.

    ``token`` defaults to ``$MAMAMIA_TOKEN``; ``cache_dir`` to ``$MAMAMIA_CACHE_DIR/<host>_<port>``
    (``~/.cache/mamamia/...``). Chunks read are kept in that cache, bounded by
    ``cache_max_bytes`` (least recently used go first); ``mamamia.open(cache_dir)`` reads it
    offline.
    """
    return Catalog(
        RemoteBackend(
            server_url(url) or url,
            token=token,
            cache_dir=cache_dir,
            cache_max_bytes=cache_max_bytes,
            timeout=timeout,
            retries=retries,
            version=version,
        )
    )
