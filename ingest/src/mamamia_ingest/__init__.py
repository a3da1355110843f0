"""mamamia_ingest: raw MAMA-MIA folder to catalog, and phantom datasets."""

from __future__ import annotations

from mamamia_ingest._ingest import IngestError, IngestReport, ingest
from mamamia_ingest._verify import VerifyReport, verify

__all__ = [
    "IngestError",
    "IngestReport",
    "VerifyReport",
    "ingest",
    "verify",
]
