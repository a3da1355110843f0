"""Closed value sets of the MAMA-MIA files and the catalog."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "PATIENT_ID_PATTERN",
    "AgeGroup",
    "BmiGroup",
    "Dataset",
    "EthnicityGroup",
    "NottinghamGrade",
    "QualityRating",
    "Split",
    "TumorSubtype",
    "TumorSubtypeGroup",
    "View",
    "VolumeKind",
]


class Dataset(StrEnum):
    """Source TCIA collection of a case."""

    DUKE = "DUKE"
    ISPY1 = "ISPY1"
    ISPY2 = "ISPY2"
    NACT = "NACT"


class View(StrEnum):
    """MRI acquisition plane."""

    AXIAL = "axial"
    SAGITTAL = "sagittal"


class TumorSubtype(StrEnum):
    """Tumour subtype from receptor status (`luminal`: not enough information for A or B)."""

    LUMINAL = "luminal"
    LUMINAL_A = "luminal_a"
    LUMINAL_B = "luminal_b"
    HER2_ENRICHED = "her2_enriched"
    HER2_PURE = "her2_pure"
    TRIPLE_NEGATIVE = "triple_negative"


class TumorSubtypeGroup(StrEnum):
    """The paper's subtype groups: `luminal` = luminal + luminal_a + luminal_b."""

    LUMINAL = "luminal"
    HER2_ENRICHED = "her2_enriched"
    HER2_PURE = "her2_pure"
    TRIPLE_NEGATIVE = "triple_negative"


class BmiGroup(StrEnum):
    """Body-mass-index category (the legend spells the obesity classes `obesity_class1`)."""

    UNDERWEIGHT = "underweight"
    NORMAL = "normal"
    OVERWEIGHT = "overweight"
    OBESITY_CLASS_1 = "obesity_class_1"
    OBESITY_CLASS_2 = "obesity_class_2"
    OBESITY_CLASS_3 = "obesity_class_3"


class NottinghamGrade(StrEnum):
    """Nottingham histological grade."""

    LOW = "low"
    INTERMEDIATE = "intermediate"
    HIGH = "high"


class AgeGroup(StrEnum):
    """Age groups of the dataset paper."""

    UNDER_40 = "<40"
    AGE_40_49 = "40-49"
    AGE_50_59 = "50-59"
    AGE_60_69 = "60-69"
    AGE_70_PLUS = ">=70"


class EthnicityGroup(StrEnum):
    """Ethnicity groups of the dataset paper."""

    CAUCASIAN = "caucasian"
    AFRICAN_AMERICAN = "african_american"
    ASIAN = "asian"
    OTHER = "other"


class Split(StrEnum):
    """Official train/test split of a case."""

    TRAIN = "train"
    TEST = "test"


class QualityRating(StrEnum):
    """An expert's rating of a preliminary automatic segmentation."""

    GOOD = "Good"
    ACCEPTABLE = "Acceptable"
    POOR = "Poor"
    MISSED = "Missed"


class VolumeKind(StrEnum):
    """What a stored volume holds: a DCE image phase or a segmentation mask."""

    IMAGE = "image"
    EXPERT = "expert"
    AUTOMATIC = "automatic"


#: A patient id as the catalog accepts it (any letter case; ids are compared uppercased): it
#: becomes a folder and URL segment, so no dots, slashes, spaces or unicode.
PATIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
