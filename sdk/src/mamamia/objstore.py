"""S3-compatible object storage, for the packages that write and serve catalogs there.

``mamamia.open("s3://bucket/prefix")`` is all a reader needs; ``mamamia ingest`` and
``mamamia serve`` use these names to publish to and serve from a store.
"""

from __future__ import annotations

from mamamia._objstore import (
    ObjectStore,
    ObjectStoreBackend,
    ObjectStoreError,
    is_store_url,
    read_store_manifest,
    store_cache_dir,
)

__all__ = [
    "ObjectStore",
    "ObjectStoreBackend",
    "ObjectStoreError",
    "is_store_url",
    "read_store_manifest",
    "store_cache_dir",
]
