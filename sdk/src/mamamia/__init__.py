"""mamamia: the MAMA-MIA catalog from Python.

``mamamia.open(path)`` opens a catalog folder; cohorts come from SQL, cases carry lazy volumes.
"""

from __future__ import annotations

from mamamia._case import Case
from mamamia._catalog import Catalog, Citation, open
from mamamia._cohort import Cohort, CohortChange, CohortChangedWarning, load_cohort
from mamamia._errors import (
    AuthenticationError,
    CatalogError,
    CatalogFormatError,
    CatalogNotFound,
    CatalogVersionMismatch,
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
from mamamia._tables import ClinicalTable, read_clinical_table
from mamamia._volume import Geometry, Volume

__all__ = [
    "AuthenticationError",
    "Case",
    "Catalog",
    "CatalogError",
    "CatalogFormatError",
    "CatalogNotFound",
    "CatalogVersionMismatch",
    "ChunkMissingError",
    "Citation",
    "ClinicalTable",
    "Cohort",
    "CohortChange",
    "CohortChangedWarning",
    "FileResult",
    "Geometry",
    "InvalidRequest",
    "MamamiaError",
    "NotFoundError",
    "QueryError",
    "QueryRejected",
    "QueryTimeout",
    "QueryTooLarge",
    "SyncError",
    "SyncReport",
    "TableReadError",
    "TransportError",
    "Volume",
    "load_cohort",
    "open",
    "read_clinical_table",
    "sync",
]
