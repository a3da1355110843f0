"""Reading a catalog's ``catalog.json``, for the packages that serve and check catalogs."""

from __future__ import annotations

from mamamia._manifest import SUPPORTED_FORMAT_VERSION, check_manifest, read_manifest

__all__ = ["SUPPORTED_FORMAT_VERSION", "check_manifest", "read_manifest"]
