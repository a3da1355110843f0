"""The `legend` sheet of clinical_and_imaging_info.xlsx, corrected, as data.

The schema package does no file I/O, so the legend text is baked in here. Corrections against the
sheet of the first release: the sheet names two columns differently
(`multifocal cancer`, `oncotype`), gives `patient_size` in cm although the values are metres, and
describes `pixel_spacing` as [x, y, z] although it holds two numbers (row and column spacing).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["LEGEND_ALIASES", "LEGEND_TEXT", "LegendText"]


class LegendText(NamedTuple):
    unit: str | None
    description: str
    legend_field: str | None  # the name the legend sheet uses, when it differs or is absent
    correction: str | None  # what was corrected against the legend sheet, if anything


_YES_NO = "0: no, 1: yes, empty: no information."

LEGEND_TEXT: dict[str, LegendText] = {
    "patient_id": LegendText(
        None,
        "Case identifier: source collection and the collection's patient number (e.g. DUKE_001), "
        "uppercase; the key of every table.",
        None,
        None,
    ),
    "dataset": LegendText(None, "Source TCIA collection of the case.", None, None),
    "bilateral_breast_cancer": LegendText(
        None, "The patient has bilateral breast cancer. " + _YES_NO, None, None
    ),
    "multifocal_cancer": LegendText(
        None,
        "The patient has two or more distinct tumour masses in the same breast. " + _YES_NO,
        "multifocal cancer",
        "The legend names this column `multifocal cancer`; the data column is `multifocal_cancer`.",
    ),
    "nac_agent": LegendText(
        None,
        "Neoadjuvant chemotherapy agent(s), joined with ' + ' (e.g. 'Paclitaxel + Neratinib').",
        None,
        None,
    ),
    "endocrine_therapy": LegendText(
        None, "The patient received endocrine therapy. " + _YES_NO, None, None
    ),
    "anti_her2_neu_therapy": LegendText(
        None, "The patient received anti-HER2/neu therapy. " + _YES_NO, None, None
    ),
    "pcr": LegendText(
        None,
        "Pathological complete response to neoadjuvant chemotherapy. " + _YES_NO,
        None,
        None,
    ),
    "mastectomy_post_nac": LegendText(
        None, "Mastectomy after neoadjuvant chemotherapy. " + _YES_NO, None, None
    ),
    "days_to_follow_up": LegendText(
        "day", "Days until the last follow-up or death; empty: no information.", None, None
    ),
    "days_to_recurrence": LegendText(
        "day",
        "Days until tumour recurrence. 0: no recurrence, >0: days to recurrence, "
        "empty: no information.",
        None,
        None,
    ),
    "days_to_metastasis": LegendText(
        "day",
        "Days until recurrence with metastasis. 0: no metastasis, >0: days to metastasis, "
        "empty: no information.",
        None,
        None,
    ),
    "days_to_death": LegendText(
        "day",
        "Days until death. 0: no death, >0: days to death, empty: no information.",
        None,
        None,
    ),
    "hr": LegendText(
        None,
        "Hormone receptor status. 0: negative, 1: positive, empty: no information.",
        None,
        None,
    ),
    "er": LegendText(
        None,
        "Oestrogen receptor status. 0: negative, 1: positive, empty: no information.",
        None,
        None,
    ),
    "pr": LegendText(
        None,
        "Progesterone receptor status. 0: negative, 1: positive, empty: no information.",
        None,
        None,
    ),
    "her2": LegendText(
        None,
        "Human epidermal growth factor receptor 2 status. 0: negative, 1: positive, "
        "empty: no information.",
        None,
        None,
    ),
    "mammaprint": LegendText(
        None,
        "MammaPrint 70-gene assay risk class. 0: low risk, 1: high risk, empty: no information.",
        None,
        None,
    ),
    "oncotype_score": LegendText(
        None,
        "Oncotype DX Recurrence Score (0 to 100); empty: no information.",
        "oncotype",
        "The legend names this column `oncotype`; the data column is `oncotype_score`.",
    ),
    "nottingham_grade": LegendText(None, "Nottingham histological grade.", None, None),
    "tumor_subtype": LegendText(
        None,
        "Tumour subtype established from receptor status; `luminal`: not enough information to "
        "categorise as luminal A or B.",
        None,
        None,
    ),
    "age": LegendText("year", "Age at first screening; empty: no information.", None, None),
    "menopause": LegendText(
        None,
        "Menopausal status at first screening, free text: 'pre', 'post', or longer strings "
        "starting 'pre (' or 'peri ('. Called `menopausal_status` in the per-case JSON.",
        None,
        None,
    ),
    "ethnicity": LegendText(
        None,
        "Ethnicity as provided by TCIA, lowercase free text (e.g. 'caucasian', "
        "'african american', 'asian', 'hispanic', 'multiple race').",
        None,
        None,
    ),
    "has_implant": LegendText(None, "The patient has a breast implant. 0: no, 1: yes.", None, None),
    "weight": LegendText("kg", "Patient weight from the original DICOM metadata.", None, None),
    "patient_size": LegendText(
        "m",
        "Patient height from the original DICOM metadata (DICOM PatientSize), in metres.",
        None,
        "The legend gives cm; the values are metres (1.50 to 1.80).",
    ),
    "bmi_group": LegendText(
        None,
        "Body-mass-index category. Where patient_size is unknown a default height of 1.65 m "
        "was used to compute it.",
        None,
        "The legend writes obesity_class1..3; the data (and this schema) use obesity_class_1..3.",
    ),
    "breast_density": LegendText(
        None,
        "Breast density category, a to d (BI-RADS style); second release only.",
        None,
        None,
    ),
    "view": LegendText(None, "MRI acquisition plane.", None, None),
    "bilateral_mri": LegendText(
        None, "The MRI covers both breasts. 0: unilateral, 1: bilateral.", None, None
    ),
    "num_phases": LegendText(
        None,
        "Number of DCE phases: one pre-contrast phase and two or more post-contrast phases.",
        None,
        None,
    ),
    "fat_suppressed": LegendText(None, "Fat suppression was applied. 0: no, 1: yes.", None, None),
    "field_strength": LegendText(
        "T", "Magnetic field strength of the scanner (1.5 or 3).", None, None
    ),
    "image_rows": LegendText("voxel", "Number of rows of the original MRI slices.", None, None),
    "image_columns": LegendText(
        "voxel", "Number of columns of the original MRI slices.", None, None
    ),
    "num_slices": LegendText("voxel", "Number of slices of the MRI.", None, None),
    "pixel_spacing": LegendText(
        "mm",
        "In-plane pixel spacing as two numbers [row spacing, column spacing] (DICOM PixelSpacing); "
        "stored as a list parsed from the text '[0.5859, 0.5859]'.",
        None,
        "The legend says [x, y, z]; the values hold two numbers, row then column spacing.",
    ),
    "slice_thickness": LegendText("mm", "Slice thickness of the MRI.", None, None),
    "site": LegendText(
        None,
        "Clinical trial site id, as given (first release: trailing spaces stripped, 'Site AAI' "
        "and 'AAI' both occur, a number for NACT, empty for DUKE).",
        None,
        None,
    ),
    "manufacturer": LegendText(None, "Scanner manufacturer (GE, Philips, SIEMENS).", None, None),
    "scanner_model": LegendText(None, "Scanner model name, stripped.", None, None),
    "high_bit": LegendText(
        None, "Most significant bit of the pixel samples (DICOM HighBit).", None, None
    ),
    "window_center": LegendText(None, "Display window centre (DICOM WindowCenter).", None, None),
    "window_width": LegendText(None, "Display window width (DICOM WindowWidth).", None, None),
    "echo_time": LegendText(
        "ms",
        "Echo time: from the middle of the excitation pulse to the peak of the echo.",
        None,
        None,
    ),
    "repetition_time": LegendText(
        "ms",
        "Repetition time: from the start of one pulse sequence to the start of the next.",
        None,
        None,
    ),
    "acquisition_times": LegendText(
        "s",
        "Acquisition time of each phase relative to the pre-contrast phase, one number per phase, "
        "parsed from the text '[0, 584, 714]'. In 36 rows of the first release the count differs "
        "from num_phases (some rows have none).",
        None,
        None,
    ),
    "acquisition_date": LegendText(
        None,
        "Date of the MRI acquisition (source text yyyy/mm/dd); may be shifted by anonymisation.",
        None,
        None,
    ),
    "tcia_series_uid": LegendText(
        None, "SeriesInstanceUID of the source series in TCIA.", None, None
    ),
    # Derived columns (not in the spreadsheet).
    "age_group": LegendText(
        None,
        "Derived from age, grouped as the dataset paper does; null where age is empty.",
        None,
        None,
    ),
    "ethnicity_group": LegendText(
        None,
        "Derived from ethnicity as the paper groups it: caucasian, african_american, asian, "
        "other (every other non-empty value); null where ethnicity is empty.",
        None,
        None,
    ),
    "tumor_subtype_group": LegendText(
        None,
        "Derived from tumor_subtype as the paper groups it: luminal (= luminal, luminal_a, "
        "luminal_b), her2_enriched, her2_pure, triple_negative; null where tumor_subtype is empty.",
        None,
        None,
    ),
}

# Header spellings seen in sheets or code, mapped to the column name.
LEGEND_ALIASES: dict[str, str] = {
    "multifocal cancer": "multifocal_cancer",
    "oncotype": "oncotype_score",
    "menopausal_status": "menopause",
}
