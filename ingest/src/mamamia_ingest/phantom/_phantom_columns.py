"""Column names of clinical_and_imaging_info.xlsx and a built-in ``legend`` sheet."""

from __future__ import annotations

#: The 49 columns of the first release, in order (docs/dataset.md).
COLUMNS_R1: tuple[str, ...] = (
    "patient_id",
    "dataset",
    "bilateral_breast_cancer",
    "multifocal_cancer",
    "nac_agent",
    "endocrine_therapy",
    "anti_her2_neu_therapy",
    "pcr",
    "mastectomy_post_nac",
    "days_to_follow_up",
    "days_to_recurrence",
    "days_to_metastasis",
    "days_to_death",
    "hr",
    "er",
    "pr",
    "her2",
    "mammaprint",
    "oncotype_score",
    "nottingham_grade",
    "tumor_subtype",
    "age",
    "menopause",
    "ethnicity",
    "has_implant",
    "weight",
    "patient_size",
    "bmi_group",
    "view",
    "bilateral_mri",
    "num_phases",
    "fat_suppressed",
    "field_strength",
    "image_rows",
    "image_columns",
    "num_slices",
    "pixel_spacing",
    "slice_thickness",
    "site",
    "manufacturer",
    "scanner_model",
    "high_bit",
    "window_center",
    "window_width",
    "echo_time",
    "repetition_time",
    "acquisition_times",
    "acquisition_date",
    "tcia_series_uid",
)

#: The second release adds ``breast_density`` right after ``bmi_group``.
COLUMNS_R2: tuple[str, ...] = (
    *COLUMNS_R1[: COLUMNS_R1.index("bmi_group") + 1],
    "breast_density",
    *COLUMNS_R1[COLUMNS_R1.index("bmi_group") + 1 :],
)

#: Release 2 caps the number of phases at this value.
RELEASE2_MAX_PHASES = 6

_BINARY = "0: no, 1: yes, empty: no info available"
_RECEPTOR = "0: negative, 1: positive, empty: no info available"

# A data dictionary shaped like the real one: Field | Description | Options | (unnamed), option
# lists continued on rows whose Field is empty, and the real sheet's known quirks kept on purpose
# (``multifocal cancer``, ``oncotype``, patient_size "cm", pixel_spacing "[x,y,z]",
# obesity_class1), so readers that correct them are exercised by the phantom too.
_LEGEND_R1: tuple[tuple[str | None, str | None, str | None, str | None], ...] = (
    ("Field", "Description", "Options", None),
    ("patient_id", "Source dataset and patient number", "The source dataset's ID is kept", None),
    ("dataset", "Source collection in TCIA", "DUKE", None),
    (None, None, "ISPY1", None),
    (None, None, "ISPY2", None),
    (None, None, "NACT", None),
    ("bilateral_breast_cancer", "Cancer in both breasts", _BINARY, None),
    ("multifocal cancer", "Two or more separate tumour masses in one breast", _BINARY, None),
    ("nac_agent", "Neoadjuvant treatment agent", "Anthracycline", None),
    (None, None, "Taxane", None),
    (None, None, "Paclitaxel", None),
    (None, None, "FEC100", None),
    (None, None, "Neratinib", None),
    (None, None, "Carboplatin", None),
    ("endocrine_therapy", "Endocrine therapy received", _BINARY, None),
    ("anti_her2_neu_therapy", "Anti-HER2/neu therapy received", _BINARY, None),
    ("pcr", "Pathological complete response after neoadjuvant chemotherapy", _BINARY, None),
    ("mastectomy_post_nac", "Mastectomy after neoadjuvant treatment", _BINARY, None),
    ("days_to_follow_up", "Days to the last follow-up or death", "days, empty: no info", None),
    ("days_to_recurrence", "Days to tumour recurrence", "0: no recurrence", None),
    (None, None, ">0: days to recurrence", None),
    (None, None, "empty: no info available", None),
    ("days_to_death", "Days to death", "0: no death", None),
    (None, None, ">0: days to death", None),
    (None, None, "empty: no info available", None),
    ("days_to_metastasis", "Days to recurrence with metastasis", "0: no metastasis", None),
    (None, None, ">0: days to metastasis", None),
    (None, None, "empty: no info available", None),
    ("hr", "Hormone receptor status", _RECEPTOR, None),
    ("er", "Estrogen receptor status", _RECEPTOR, None),
    ("pr", "Progesterone receptor status", _RECEPTOR, None),
    ("her2", "HER2 status", _RECEPTOR, None),
    ("mammaprint", "MammaPrint 70-gene risk class", "0: low risk, 1: high risk", None),
    ("oncotype", "Oncotype DX recurrence score", "0 to 100, empty: no info", None),
    ("nottingham_grade", "Nottingham histological grade", "low, intermediate, high", None),
    ("tumor_subtype", "Subtype from receptor status", "luminal", "not enough info for A or B"),
    (None, None, "luminal_a", None),
    (None, None, "luminal_b", None),
    (None, None, "her2_enriched", None),
    (None, None, "her2_pure", None),
    (None, None, "triple_negative", None),
    ("age", "Age at first screening", "years, empty: no info", None),
    ("menopause", "Menopausal status at first screening", "pre, peri, post", None),
    ("ethnicity", "Ethnicity as given in TCIA", "african american", None),
    (None, None, "asian", None),
    (None, None, "caucasian", None),
    (None, None, "hispanic", None),
    (None, None, "multiple race", None),
    ("has_implant", "Breast implant", "0: no, 1: yes", None),
    ("weight", "Patient weight from the DICOM header", "kg", None),
    ("patient_size", "Patient size from the DICOM header", "cm", None),
    ("bmi_group", "Body mass index category", "underweight", None),
    (None, None, "normal", None),
    (None, None, "overweight", None),
    (None, None, "obesity_class1", None),
    (None, None, "obesity_class2", None),
    (None, None, "obesity_class3", None),
    ("view", "Acquisition plane", "axial, sagittal", None),
    ("bilateral_mri", "Both breasts imaged", "0: unilateral, 1: bilateral", None),
    ("num_phases", "Number of phases (1 pre-contrast and 2 or more post-contrast)", None, None),
    ("fat_suppressed", "Fat suppression applied", "0: no, 1: yes", None),
    ("field_strength", "Field strength (Tesla)", "1.5, 3", None),
    ("image_rows", "Rows of the MRI matrix", None, None),
    ("image_columns", "Columns of the MRI matrix", None, None),
    ("num_slices", "Number of slices", None, None),
    ("pixel_spacing", "Pixel spacing in [x,y,z] (mm)", None, None),
    ("slice_thickness", "Slice thickness (mm)", None, None),
    ("site", "Trial site", None, None),
    ("manufacturer", "Scanner manufacturer", "GE", None),
    (None, None, "Philips", None),
    (None, None, "SIEMENS", None),
    ("scanner_model", "Scanner model", None, None),
    ("high_bit", "Most significant bit of the pixel data", None, None),
    ("window_center", "Display window centre", None, None),
    ("window_width", "Display window width", None, None),
    ("echo_time", "Echo time", "milliseconds", None),
    ("repetition_time", "Repetition time", "milliseconds", None),
    (
        "acquisition_times",
        "Time of each phase after the pre-contrast phase",
        "list of seconds",
        None,
    ),
    ("acquisition_date", "Acquisition date (shifted by anonymization)", "yyyy/mm/dd", None),
    ("tcia_series_uid", "Series instance UID in TCIA", None, None),
)

BREAST_DENSITY_LEGEND: tuple[tuple[str | None, str | None, str | None, str | None], ...] = (
    ("breast_density", "BI-RADS breast density", "a: almost entirely fatty", None),
    (None, None, "b: scattered fibroglandular", None),
    (None, None, "c: heterogeneously dense", None),
    (None, None, "d: extremely dense", None),
)


def builtin_legend(release: int) -> list[tuple[object, ...]]:
    """The built-in ``legend`` sheet rows (header first) for ``release``."""
    rows: list[tuple[object, ...]] = list(_LEGEND_R1)
    if release == 2:
        at = next(i for i, row in enumerate(rows) if row[0] == "view")
        rows[at:at] = BREAST_DENSITY_LEGEND
    return rows
