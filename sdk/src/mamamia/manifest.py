"""Reading a catalog's ``catalog.json`` into ``mamamia_schema.CatalogManifest``, for the
packages that serve, publish and check catalogs."""

from __future__ import annotations

from mamamia._manifest import (
    SUPPORTED_FORMAT_VERSION,
    check_manifest,
    manifest_text,
    parse_manifest,
    read_manifest,
)

__all__ = [
    "SUPPORTED_FORMAT_VERSION",
    "check_manifest",
    "manifest_text",
    "parse_manifest",
    "read_manifest",
]
