"""Reading catalog.json into ``mamamia_schema.CatalogManifest``: the one place that knows the
manifest's format version rules and turns a malformed file into a ``CatalogFormatError``.

Every reader of a catalog goes through ``check_manifest`` (a folder, an object store, a server's
``/v1/catalog``). The one lenient reader is ``mamamia verify`` (and ingest's look at the previous
version), which must report or step over a damaged file rather than stop at it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mamamia._errors import CatalogFormatError, CatalogNotFound
from mamamia_schema import CatalogManifest

__all__ = [
    "SUPPORTED_FORMAT_VERSION",
    "check_manifest",
    "manifest_text",
    "parse_manifest",
    "read_manifest",
]

#: The newest catalog format this SDK reads.
SUPPORTED_FORMAT_VERSION = 2

# How many of a manifest's field errors one message names.
_SHOWN_ERRORS = 3


def _field_errors(exc: ValidationError) -> str:
    errors = exc.errors()
    parts = [
        f"field {'.'.join(str(p) for p in error['loc']) or '(root)'}: {error['msg']}"
        for error in errors[:_SHOWN_ERRORS]
    ]
    more = len(errors) - _SHOWN_ERRORS
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def check_manifest(manifest: Mapping[str, Any], where: str) -> CatalogManifest:
    """The typed manifest of a parsed catalog.json; ``where`` (a folder, URL or file) starts
    every error. A format newer than this SDK's is refused before any other field is looked at,
    since a newer format may change them."""
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CatalogFormatError(f"{where}: catalog.json has no integer format_version")
    if version > SUPPORTED_FORMAT_VERSION:
        raise CatalogFormatError(
            f"{where}: the catalog has format version {version}, but this mamamia reads up to "
            f"version {SUPPORTED_FORMAT_VERSION}; upgrade it: pip install -U mamamia"
        )
    try:
        checked = CatalogManifest.model_validate(dict(manifest))
    except ValidationError as exc:
        raise CatalogFormatError(
            f"{where}: catalog.json is not a valid manifest: {_field_errors(exc)}"
        ) from exc
    if "cases" not in checked.tables:
        raise CatalogFormatError(f"{where}: catalog.json names no 'cases' table")
    return checked


def parse_manifest(text: bytes | str, where: str) -> CatalogManifest:
    """The typed manifest of catalog.json's bytes."""
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise CatalogFormatError(f"{where}: catalog.json is not JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise CatalogFormatError(f"{where}: catalog.json is not a JSON object")
    return check_manifest(manifest, where)


def read_manifest(root: Path) -> CatalogManifest:
    """The manifest of the catalog folder ``root``."""
    path = root / "catalog.json"
    if not path.is_file():
        raise CatalogNotFound(
            f"{root}: no catalog.json here; build one with: mamamia ingest RAW {root}"
        )
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise CatalogFormatError(f"{path}: cannot read the manifest: {exc}") from exc
    return parse_manifest(text, str(root))


def manifest_text(manifest: CatalogManifest) -> str:
    """catalog.json's text for ``manifest`` (what ingest publishes and a cache mirrors)."""
    return json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n"
