"""mamamia: the MAMA-MIA catalog from Python.

``mamamia.open(path)`` opens a catalog folder; cohorts come from SQL, cases carry lazy volumes.
"""

from __future__ import annotations

from mamamia._atomic import ATOMIC_TEMP_PREFIX, atomic_write, write_atomic
from mamamia._case import Case
from mamamia._catalog import Catalog, Citation
from mamamia._cohort import Cohort, CohortChange, CohortChangedWarning, load_cohort
from mamamia._crops import CropOptions, CropStream, GridStitcher
from mamamia._errors import (
    PROBLEM_TYPE_BASE,
    AuthenticationError,
    BoxOutOfRange,
    CatalogError,
    CatalogFormatError,
    CatalogNotFound,
    CatalogVersionMismatch,
    ChunkCorruptError,
    ChunkMissingError,
    InvalidIndex,
    InvalidRequest,
    MamamiaError,
    NotFoundError,
    QueryError,
    QueryFailed,
    QueryRejected,
    QueryTimeout,
    QueryTooLarge,
    TableReadError,
    TransportError,
    UnknownTable,
)
from mamamia._interop import ExportReport, NnunetOptions, nnunet_folds, torchio_sampler
from mamamia._open import connect, open
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
from mamamia._volume import Geometry, Volume, box_range
from mamamia.raw import RawFiles, find_raw_file, locate_raw_files
from mamamia.sqlguard import ValueSetWarning

__all__ = [
    "ATOMIC_TEMP_PREFIX",
    "PROBLEM_TYPE_BASE",
    "AuthenticationError",
    "BoxOutOfRange",
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
    "CropOptions",
    "CropStream",
    "ExportReport",
    "FileResult",
    "Geometry",
    "GridStitcher",
    "InvalidIndex",
    "InvalidRequest",
    "MamamiaError",
    "NnunetOptions",
    "NotFoundError",
    "QualityTable",
    "QueryError",
    "QueryFailed",
    "QueryRejected",
    "QueryTimeout",
    "QueryTooLarge",
    "RawFiles",
    "SplitsTable",
    "SyncError",
    "SyncReport",
    "TableReadError",
    "TransportError",
    "UnknownTable",
    "ValueSetWarning",
    "Volume",
    "atomic_write",
    "box_range",
    "connect",
    "find_raw_file",
    "load_cohort",
    "locate_raw_files",
    "nnunet_folds",
    "open",
    "read_clinical_table",
    "read_patient_info",
    "read_quality_scores",
    "read_splits",
    "sync",
    "torchio_sampler",
    "write_atomic",
]
