"""Opening a Catalog: ``mamamia.open`` (a folder or ``s3://``) and ``mamamia.connect`` (a server).

Kept apart from the Catalog so the facade never imports its backends: imports run one way,
from here to the Catalog and each backend.
"""

from __future__ import annotations

from pathlib import Path

from mamamia._catalog import Catalog
from mamamia._local import LocalBackend
from mamamia._objstore import ObjectStoreBackend, is_store_url
from mamamia._remote import RemoteBackend

__all__ = ["connect", "open", "open_store"]


def open(path: str | Path, *, cache_dir: str | Path | None = None, guard: bool = True) -> Catalog:
    """Open a local catalog folder (what ``mamamia ingest`` writes) or ``s3://bucket/prefix``.

    Queries pass the server's SQL guard (one SELECT over the catalog's tables and registered
    ones, allowed functions only), so local and remote answers and refusals agree.
    ``guard=False`` is for a user who trusts the SQL they run: any single SELECT (reading
    files with ``read_csv`` and the like), still never a statement that changes the catalog.

    For an object store, ``cache_dir`` (default ``$MAMAMIA_CACHE_DIR/s3_<bucket>_<prefix>``)
    holds the mirrored tables and the chunks read; see docs/scaling.md.
    """
    if is_store_url(path):
        return open_store(str(path), cache_dir=cache_dir)
    return Catalog(LocalBackend(path, guard=guard))


def open_store(
    url: str, *, cache_dir: str | Path | None = None, cache_max_bytes: int = 20 * 2**30
) -> Catalog:
    """A Catalog over ``s3://bucket/prefix``, pinned to the version its catalog.json names."""
    return Catalog(ObjectStoreBackend(url, cache_dir=cache_dir, cache_max_bytes=cache_max_bytes))


def connect(
    url: str,
    token: str | None = None,
    cache_dir: str | Path | None = None,
    *,
    cache_max_bytes: int = 20 * 2**30,
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
            url,
            token=token,
            cache_dir=cache_dir,
            cache_max_bytes=cache_max_bytes,
            timeout=timeout,
            retries=retries,
            version=version,
        )
    )
