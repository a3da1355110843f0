"""The public names of each package: what users import. A change here is an API change.

Each package's ``__init__`` re-exports its public names behind an explicit ``__all__``; every
name listed must exist, be importable, and be documented; private modules stay private.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC: dict[str, set[str]] = {
    "mamamia_schema": {
        "AgeGroup", "BREAST_DENSITY_VALUES", "BmiGroup", "BreastCoordinates", "CITATIONS",
        "CLINICAL_COLUMNS", "COLUMN_DOCS", "CatalogManifest", "Citation", "ClinicalHeader",
        "ClinicalRecord", "ColumnDoc", "DERIVED_COLUMNS", "Dataset", "EthnicityGroup",
        "FORMAT_VERSION", "ImagingData", "PATIENT_ID_PATTERN", "LICENCE", "NottinghamGrade", "PatientClinicalData",
        "PatientInfo", "PrimaryLesion", "Problem", "QualityRating", "QualityScore", "Severity",
        "Split", "SplitAssignment", "TableRef", "TumorSubtype", "TumorSubtypeGroup", "View",
        "VolumeInfo", "VolumeKind", "age_group", "arrow_type_for", "catalog_version_of",
        "check_clinical_header", "clinical_arrow_schema", "clinical_columns", "ethnicity_group",
        "model_arrow_schema", "normalise_column_name", "parse_number_list",
        "quality_arrow_schema", "records_from_arrow", "records_to_arrow", "schema_docs",
        "splits_arrow_schema", "tumor_subtype_group", "validate_clinical_row",
        "validate_patient_info", "validate_quality_row", "volumes_arrow_schema",
        "FEATURE_COLUMNS", "FEATURE_DOCS", "feature_arrow_schema",
    },
    "mamamia": {
        "AuthenticationError", "Case", "Catalog", "CatalogError", "CatalogFormatError",
        "CatalogNotFound", "CatalogVersionMismatch", "ChunkCorruptError", "ChunkMissingError", "Citation",
        "ClinicalTable", "Cohort", "CohortChange", "CohortChangedWarning", "CropStream",
        "FileResult", "Geometry", "GridStitcher", "InvalidRequest", "MamamiaError",
        "NotFoundError", "QualityTable", "QueryError", "QueryRejected", "QueryTimeout",
        "QueryTooLarge", "RawFiles", "SplitsTable", "SyncError", "SyncReport", "TableReadError",
        "TransportError", "Volume", "PROBLEM_TYPE_BASE", "QueryFailed", "UnknownTable", "connect", "find_raw_file", "load_cohort",
        "locate_raw_files", "open", "read_clinical_table", "read_patient_info",
        "read_quality_scores", "read_splits", "sync",
        "ATOMIC_TEMP_PREFIX", "atomic_write", "write_atomic", "CropOptions",
        "ExportReport", "NnunetOptions", "nnunet_folds", "torchio_sampler",
        "BoxOutOfRange", "InvalidIndex", "box_range", "ValueSetWarning",
    },
    "mamamia.sqlguard": {
        "ALLOWED_FUNCTIONS", "CheckedQuery", "ParamValue", "QueryLimits", "check_params",
        "check_query", "check_select", "explain", "same_tree", "strip_statement", "translate",
        "where_to_sql", "ValueSetWarning", "value_sets", "value_warnings",
    },
    "mamamia_ingest": {
        "IngestError", "IngestReport", "PhantomCase", "PhantomError", "PhantomReport",
        "VerifyReport", "ingest", "verify", "write_phantom",
        "IngestOptions", "PublishReport", "ingest_folder", "publish", "UpgradeReport", "upgrade",
    },
    "mamamia_server": {"ServerSettings", "create_app"},
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_all_is_the_pinned_public_api(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == PUBLIC[package]
    assert len(module.__all__) == len(set(module.__all__)), "duplicate names in __all__"


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_every_public_name_exists_and_is_documented(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{package}.{name} has no docstring"
            assert not value.__module__.split(".")[-1].startswith("__"), name


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_star_import_gives_exactly_all(package: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {package} import *", namespace)
    assert set(namespace) - {"__builtins__"} == PUBLIC[package]


def test_sdk_errors_form_one_tree() -> None:
    import mamamia

    errors = [getattr(mamamia, n) for n in mamamia.__all__ if n.endswith(("Error", "Rejected"))]
    errors += [mamamia.CatalogNotFound, mamamia.CatalogVersionMismatch, mamamia.QueryTimeout]
    errors += [mamamia.QueryTooLarge, mamamia.InvalidRequest]
    for error in errors:
        assert issubclass(error, mamamia.MamamiaError), error


def test_the_error_tree_drawing_names_every_error_class() -> None:
    """The drawing in ``mamamia._errors`` names every ``MamamiaError`` of the four packages."""
    import mamamia
    import mamamia._errors as errors_module
    import mamamia.evaluate
    import mamamia.objstore
    import mamamia_ingest
    import mamamia_ingest.phantom
    import mamamia_server

    def subclasses(cls: type) -> set[type]:
        found = set(cls.__subclasses__())
        for sub in list(found):
            found |= subclasses(sub)
        return found

    # Imported for their classes: every package that defines errors is loaded.
    assert mamamia.evaluate and mamamia.objstore and mamamia_ingest.phantom and mamamia_server
    ours = {
        cls
        for cls in subclasses(mamamia.MamamiaError)
        if cls.__module__.split(".")[0] in {"mamamia", "mamamia_ingest", "mamamia_server"}
    }
    assert {mamamia_ingest.IngestError, mamamia.evaluate.EvaluationError} <= ours
    drawing = errors_module.__doc__ or ""
    assert sorted(c.__name__ for c in ours if f"── {c.__name__} " not in drawing) == []
