"""mamamia: the MAMA-MIA catalog from Python.

``mamamia.open(path)`` opens a catalog folder; cohorts come from SQL, cases carry lazy volumes.
"""

from __future__ import annotations

from mamamia._case import Case
from mamamia._catalog import Catalog, Citation, connect, open
from mamamia._cohort import Cohort, CohortChange, CohortChangedWarning, load_cohort
from mamamia._crops import CropStream, GridStitcher
from mamamia._errors import (
    AuthenticationError,
    CatalogError,
    CatalogFormatError,
    CatalogNotFound,
    CatalogVersionMismatch,
    ChunkCorruptError,
    ChunkMissingError,
    InvalidRequest,
    MamamiaError,
    NotFoundError,
    QueryError,
    QueryRejected,
    QueryTimeout,
    QueryTooLarge,
    TableReadError,
    TransportError,
)
from mamamia._sync import FileResult, SyncError, SyncReport, sync
from mamamia._tables import (
    ClinicalTable,
    QualityTable,
    SplitsTable,
    read_clinical_table,
    read_patient_info,
    read_quality_scores,
    read_splits,
)
from mamamia._volume import Geometry, Volume
from mamamia.raw import RawFiles, find_raw_file, locate_raw_files

__all__ = [
    "AuthenticationError",
    "Case",
    "Catalog",
    "CatalogError",
    "CatalogFormatError",
    "CatalogNotFound",
    "CatalogVersionMismatch",
    "ChunkCorruptError",
    "ChunkMissingError",
    "Citation",
    "ClinicalTable",
    "Cohort",
    "CohortChange",
    "CohortChangedWarning",
    "CropStream",
    "FileResult",
    "Geometry",
    "GridStitcher",
    "InvalidRequest",
    "MamamiaError",
    "NotFoundError",
    "QualityTable",
    "QueryError",
    "QueryRejected",
    "QueryTimeout",
    "QueryTooLarge",
    "RawFiles",
    "SplitsTable",
    "SyncError",
    "SyncReport",
    "TableReadError",
    "TransportError",
    "Volume",
    "connect",
    "find_raw_file",
    "load_cohort",
    "locate_raw_files",
    "open",
    "read_clinical_table",
    "read_patient_info",
    "read_quality_scores",
    "read_splits",
    "sync",
]
