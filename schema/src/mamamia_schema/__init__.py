"""mamamia_schema: models of the MAMA-MIA files and of the mamamia catalog."""

from __future__ import annotations

from mamamia_schema._arrow import (
    FORMAT_VERSION,
    arrow_type_for,
    clinical_arrow_schema,
    model_arrow_schema,
    records_from_arrow,
    records_to_arrow,
)
from mamamia_schema._clinical import (
    BREAST_DENSITY_VALUES,
    CLINICAL_COLUMNS,
    DERIVED_COLUMNS,
    ClinicalHeader,
    ClinicalRecord,
    age_group,
    check_clinical_header,
    clinical_columns,
    ethnicity_group,
    normalise_column_name,
    parse_number_list,
    tumor_subtype_group,
    validate_clinical_row,
)
from mamamia_schema._columns import COLUMN_DOCS, ColumnDoc
from mamamia_schema._enums import (
    AgeGroup,
    BmiGroup,
    Dataset,
    EthnicityGroup,
    NottinghamGrade,
    QualityRating,
    Split,
    TumorSubtype,
    TumorSubtypeGroup,
    View,
    VolumeKind,
)
from mamamia_schema._problems import Problem, Severity

__all__ = [
    "BREAST_DENSITY_VALUES",
    "CLINICAL_COLUMNS",
    "COLUMN_DOCS",
    "DERIVED_COLUMNS",
    "FORMAT_VERSION",
    "AgeGroup",
    "BmiGroup",
    "ClinicalHeader",
    "ClinicalRecord",
    "ColumnDoc",
    "Dataset",
    "EthnicityGroup",
    "NottinghamGrade",
    "Problem",
    "QualityRating",
    "Severity",
    "Split",
    "TumorSubtype",
    "TumorSubtypeGroup",
    "View",
    "VolumeKind",
    "age_group",
    "arrow_type_for",
    "check_clinical_header",
    "clinical_arrow_schema",
    "clinical_columns",
    "ethnicity_group",
    "model_arrow_schema",
    "normalise_column_name",
    "parse_number_list",
    "records_from_arrow",
    "records_to_arrow",
    "tumor_subtype_group",
    "validate_clinical_row",
]
