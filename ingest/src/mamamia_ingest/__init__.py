"""mamamia_ingest: raw MAMA-MIA folder to catalog, and phantom datasets."""

from __future__ import annotations

from mamamia_ingest._ingest import IngestError, IngestReport, ingest
from mamamia_ingest._verify import VerifyReport, verify
from mamamia_ingest.phantom import PhantomCase, PhantomError, PhantomReport, write_phantom

__all__ = [
    "IngestError",
    "IngestReport",
    "PhantomCase",
    "PhantomError",
    "PhantomReport",
    "VerifyReport",
    "ingest",
    "verify",
    "write_phantom",
]
