"""mamamia_ingest: raw MAMA-MIA folder to catalog, and phantom datasets."""

from __future__ import annotations

from mamamia_ingest._ingest import IngestError, IngestReport, ingest, ingest_folder
from mamamia_ingest._ingest_options import IngestOptions
from mamamia_ingest._publish import PublishReport, publish
from mamamia_ingest._upgrade import UpgradeReport, upgrade
from mamamia_ingest._verify import VerifyReport, verify
from mamamia_ingest.phantom import PhantomCase, PhantomError, PhantomReport, write_phantom

__all__ = [
    "IngestError",
    "IngestOptions",
    "IngestReport",
    "PhantomCase",
    "PhantomError",
    "PhantomReport",
    "PublishReport",
    "UpgradeReport",
    "VerifyReport",
    "ingest",
    "ingest_folder",
    "publish",
    "upgrade",
    "verify",
    "write_phantom",
]
