"""Reading catalog.json: the one place that knows the manifest's format version rules."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mamamia._errors import CatalogFormatError, CatalogNotFound

__all__ = ["SUPPORTED_FORMAT_VERSION", "check_manifest", "read_manifest"]

#: The newest catalog format this SDK reads.
SUPPORTED_FORMAT_VERSION = 1


def check_manifest(manifest: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """Validate the fields every reader relies on; say plainly when the format is newer."""
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise CatalogFormatError(f"{where}: catalog.json has no integer format_version")
    if version > SUPPORTED_FORMAT_VERSION:
        raise CatalogFormatError(
            f"{where}: the catalog has format version {version}, but this mamamia reads up to "
            f"version {SUPPORTED_FORMAT_VERSION}; upgrade it: pip install -U mamamia"
        )
    if not isinstance(manifest.get("catalog_version"), str):
        raise CatalogFormatError(f"{where}: catalog.json has no catalog_version")
    tables = manifest.get("tables")
    if not isinstance(tables, Mapping) or "cases" not in tables:
        raise CatalogFormatError(f"{where}: catalog.json names no 'cases' table")
    for name, ref in tables.items():
        if not isinstance(ref, Mapping) or not isinstance(ref.get("path"), str):
            raise CatalogFormatError(f"{where}: table {name!r} in catalog.json has no path")
    return manifest


def read_manifest(root: Path) -> Mapping[str, Any]:
    """The manifest of the catalog folder ``root``."""
    path = root / "catalog.json"
    if not path.is_file():
        raise CatalogNotFound(
            f"{root}: no catalog.json here; build one with: mamamia ingest RAW {root}"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CatalogFormatError(f"{path}: cannot read the manifest: {exc}") from exc
    if not isinstance(manifest, dict):
        raise CatalogFormatError(f"{path}: the manifest is not a JSON object")
    return check_manifest(manifest, str(root))
