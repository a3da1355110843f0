"""A built-in clinical table with the real columns and plausible values (no real patient data).

The four collections are interleaved (DUKE, ISPY1, ISPY2, NACT, DUKE, ...) so that the first few
rows already cover all of them; the row counts are the real ones (291, 171, 980, 64). Values follow
the encodings of the real table (docs/dataset.md): 0/1/empty binaries, text lists for ``pixel_spacing`` and
``acquisition_times``, messy ``site`` and ``scanner_model`` strings, a few empty cells.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ._phantom_columns import COLUMNS_R2

__all__ = ["COLLECTION_COUNTS", "synthetic_order", "synthetic_row", "synthetic_rows"]

COLLECTION_COUNTS: dict[str, int] = {"DUKE": 291, "ISPY1": 171, "ISPY2": 980, "NACT": 64}


@dataclass(frozen=True)
class _Profile:
    view: str
    phases: tuple[tuple[int, int], ...]  # (num_phases, weight)
    matrices: tuple[tuple[int, int], ...]  # (rows = columns, weight)
    slices: tuple[int, int]
    thickness: tuple[float, ...]
    fov_mm: tuple[float, float]
    first_step_s: tuple[int, int]
    step_s: tuple[int, int]
    scanners: tuple[tuple[str, str, float], ...]  # (manufacturer, model, field strength)
    sites: tuple[object, ...]
    dated: bool


_PROFILES: dict[str, _Profile] = {
    "DUKE": _Profile(
        view="axial",
        phases=((3, 2), (4, 55), (5, 43), (6, 2)),
        matrices=((512, 60), (448, 34), (320, 6)),
        slices=(60, 256),
        thickness=(1.0, 1.1, 1.2, 1.3, 2.0, 2.5),
        fov_mm=(300.0, 380.0),
        first_step_s=(150, 600),
        step_s=(100, 135),
        scanners=(
            ("GE", "Signa HDxt", 1.5),
            ("GE", "SIGNA HDx ", 3.0),
            ("GE", "Optima MR450w ", 1.5),
            ("SIEMENS", "Avanto", 1.5),
            ("SIEMENS", "Skyra ", 3.0),
            ("SIEMENS", "TrioTim", 3.0),
        ),
        sites=(None,),
        dated=False,
    ),
    "ISPY1": _Profile(
        view="sagittal",
        phases=((3, 84), (4, 9), (6, 7)),
        matrices=((256, 91), (512, 9)),
        slices=(44, 128),
        thickness=(1.5, 1.8, 2.0, 2.5, 3.0, 4.0),
        fov_mm=(180.0, 220.0),
        first_step_s=(300, 450),
        step_s=(280, 360),
        scanners=(
            ("GE", "GENESIS_SIGNA ", 1.5),
            ("GE", "SIGNA EXCITE", 1.5),
            ("SIEMENS", "Sonata", 1.5),
            ("SIEMENS", "MAGNETOM VISION ", 1.5),
            ("Philips", "Gyroscan Intera ", 1.5),
        ),
        sites=("Site AAI", "Site AAE", "Site AAB", "Site AAH", "Site AAG "),
        dated=True,
    ),
    "ISPY2": _Profile(
        view="axial",
        phases=((4, 1), (5, 2), (6, 18), (7, 47), (8, 28), (9, 4)),
        matrices=((512, 74), (384, 15), (256, 4), (416, 2), (640, 2), (1024, 1)),
        slices=(52, 256),
        thickness=(0.8, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0),
        fov_mm=(300.0, 380.0),
        first_step_s=(100, 200),
        step_s=(85, 100),
        scanners=(
            ("GE", "Signa HDxt", 1.5),
            ("GE", "DISCOVERY MR750 ", 3.0),
            ("SIEMENS", "Avanto", 1.5),
            ("SIEMENS", "SymphonyTim ", 1.5),
            ("Philips", "Achieva ", 3.0),
            ("Philips", "Intera", 1.5),
        ),
        sites=("AAI ", "AAN ", "AAE ", "AAJ ", "AAV "),
        dated=True,
    ),
    "NACT": _Profile(
        view="sagittal",
        phases=((3, 90), (4, 6), (5, 2), (7, 2)),
        matrices=((256, 97), (512, 3)),
        slices=(46, 64),
        thickness=(2.0, 2.2, 2.4),
        fov_mm=(180.0, 220.0),
        first_step_s=(380, 560),
        step_s=(300, 420),
        scanners=(("GE", "GENESIS_SIGNA ", 1.5), ("GE", "GENESIS_SIGNA", 1.5)),
        sites=(4493,),
        dated=True,
    ),
}

_SUBTYPES = ("luminal", "luminal_a", "luminal_b", "her2_enriched", "her2_pure", "triple_negative")
_ETHNICITIES = (
    ("caucasian", 70),
    ("african american", 15),
    ("asian", 7),
    ("hispanic", 3),
    ("multiple race", 2),
    ("hawaiian/pacific islander", 1),
    ("american indian/alaskan native", 1),
)
_MENOPAUSE = (
    "pre",
    "post",
    "pre (<6 months since LMP AND no prior bilateral ovariectomy AND not on estrogen replacement)",
    "peri (6-12 months since LMP AND no prior bilateral ovariectomy AND not on estrogen replacement)",
)
_AGENTS = {
    "DUKE": (None,),
    "ISPY1": (None,),
    "ISPY2": ("Paclitaxel", "Paclitaxel + Neratinib", "Paclitaxel + AMG 386", "T-DM1 + Pertuzumab"),
    "NACT": ("Anthracycline", "Anthracycline + Taxane", "FEC100"),
}


def _weighted(rng: random.Random, options: tuple[tuple[object, int], ...]) -> object:
    values = [o for o, _ in options]
    weights = [w for _, w in options]
    return rng.choices(values, weights=weights, k=1)[0]


def _maybe(rng: random.Random, value: object, empty: float) -> object:
    """``value``, or an empty cell with probability ``empty``."""
    return None if rng.random() < empty else value


def _binary(rng: random.Random, p_one: float, empty: float) -> object:
    return _maybe(rng, int(rng.random() < p_one), empty)


def _bmi_group(bmi: float) -> str:
    if bmi < 18.5:
        return "underweight"
    if bmi < 25:
        return "normal"
    if bmi < 30:
        return "overweight"
    if bmi < 35:
        return "obesity_class_1"
    return "obesity_class_2" if bmi < 40 else "obesity_class_3"


def _ids(rng: random.Random) -> dict[str, list[str]]:
    ispy2 = sorted(rng.sample(range(100000, 999999), COLLECTION_COUNTS["ISPY2"]))
    return {
        "DUKE": [f"DUKE_{i:03d}" for i in range(1, COLLECTION_COUNTS["DUKE"] + 1)],
        "ISPY1": [f"ISPY1_{1000 + i:04d}" for i in range(1, COLLECTION_COUNTS["ISPY1"] + 1)],
        "ISPY2": [f"ISPY2_{i:06d}" for i in ispy2],
        "NACT": [f"NACT_{i:02d}" for i in range(1, COLLECTION_COUNTS["NACT"] + 1)],
    }


def _row(rng: random.Random, patient_id: str, dataset: str) -> dict[str, object]:
    p = _PROFILES[dataset]
    subtype = rng.choice(_SUBTYPES)
    hr = int(subtype in ("luminal", "luminal_a", "luminal_b"))
    # HER2-enriched and HER2-pure are HER2-positive by definition; luminal B may be either.
    her2 = int(
        subtype in ("her2_enriched", "her2_pure") or (subtype == "luminal_b" and rng.random() < 0.8)
    )
    pcr_rate = {"triple_negative": 0.4, "her2_enriched": 0.5, "her2_pure": 0.5}.get(subtype, 0.15)
    num_phases = int(_weighted(rng, p.phases))  # type: ignore[call-overload]
    matrix = int(_weighted(rng, p.matrices))  # type: ignore[call-overload]
    pixel = round(rng.uniform(*p.fov_mm) / matrix, 4)
    first = rng.randint(*p.first_step_s)
    times = [0, first] + [first + k * rng.randint(*p.step_s) for k in range(1, num_phases - 1)]
    times = sorted(times)[:num_phases]
    times_cell: object = "[" + ", ".join(str(t) for t in times) + "]"
    if dataset == "ISPY1" and rng.random() < 0.08:
        times_cell = None  # some ISPY1 rows have no times at all
    elif rng.random() < 0.03 and num_phases > 3:
        times_cell = "[" + ", ".join(str(t) for t in times[:-1]) + "]"  # one time short
    manufacturer, model, field = rng.choice(p.scanners)
    weight = round(rng.uniform(45.0, 110.0), 3)
    height = round(rng.uniform(1.50, 1.80), 4)
    center = rng.randint(20, 800)
    year = rng.randint(1985, 2012)
    age = rng.randint(26, 80)
    follow_up = rng.randint(200, 4000)
    weight_cell = _maybe(rng, weight, 0.2)
    size_cell = _maybe(rng, height, 0.8)
    # As in the real table: BMI uses 1.65 m where the height is unknown, and needs a weight.
    bmi_height = height if size_cell is not None else 1.65
    bmi_cell = None if weight_cell is None else _maybe(rng, _bmi_group(weight / bmi_height**2), 0.2)
    recurrence = follow_up if rng.random() < 0.15 else 0
    return {
        "patient_id": patient_id,
        "dataset": dataset,
        "bilateral_breast_cancer": int(rng.random() < 0.03),
        "multifocal_cancer": _binary(rng, 0.3, 0.3 if dataset == "ISPY1" else 0.05),
        "nac_agent": rng.choice(_AGENTS[dataset]),
        "endocrine_therapy": _binary(rng, 0.5, 0.0 if dataset == "DUKE" else 1.0),
        "anti_her2_neu_therapy": _binary(rng, float(her2), 0.0 if dataset == "DUKE" else 1.0),
        "pcr": _binary(rng, pcr_rate, 0.04),
        "mastectomy_post_nac": _binary(rng, 0.5, 0.02 if dataset in ("DUKE", "NACT") else 1.0),
        "days_to_follow_up": _maybe(rng, follow_up, 0.03),
        "days_to_recurrence": _maybe(rng, recurrence, 0.1),
        "days_to_metastasis": None if dataset != "NACT" else _maybe(rng, 0, 0.1),
        "days_to_death": _maybe(rng, 0 if rng.random() < 0.9 else follow_up, 0.1),
        "hr": _maybe(rng, hr, 0.02),
        "er": _maybe(rng, hr, 0.05),
        "pr": _maybe(rng, int(hr and rng.random() < 0.8), 0.05),
        "her2": _maybe(rng, her2, 0.02),
        "mammaprint": _binary(rng, 0.7, 0.4) if dataset == "ISPY2" else None,
        "oncotype_score": _maybe(rng, rng.randint(5, 45), 0.9) if dataset == "DUKE" else None,
        "nottingham_grade": _maybe(rng, rng.choice(("low", "intermediate", "high")), 0.35)
        if dataset == "DUKE"
        else None,
        "tumor_subtype": _maybe(rng, subtype, 0.03),
        "age": _maybe(rng, age, 0.01),
        "menopause": _maybe(rng, rng.choice(_MENOPAUSE[:2] if age < 60 else ("post",)), 0.1)
        if dataset != "NACT"
        else None,
        "ethnicity": _maybe(rng, _weighted(rng, _ETHNICITIES), 0.03),
        "has_implant": int(rng.random() < 0.01),
        "weight": weight_cell,
        "patient_size": size_cell,
        "bmi_group": bmi_cell,
        "breast_density": _maybe(rng, rng.choice("abcd"), 0.1),
        "view": p.view,
        "bilateral_mri": int(p.view == "axial"),
        "num_phases": num_phases,
        "fat_suppressed": int(rng.random() < 0.9),
        "field_strength": field if field != 3.0 else 3,
        "image_rows": matrix,
        "image_columns": matrix,
        "num_slices": rng.randint(*p.slices),
        "pixel_spacing": f"[{pixel}, {pixel}]",
        "slice_thickness": rng.choice(p.thickness),
        "site": rng.choice(p.sites),
        "manufacturer": manufacturer,
        "scanner_model": model,
        "high_bit": rng.choice((11, 15)),
        "window_center": _maybe(rng, center, 0.05),
        "window_width": _maybe(rng, 2 * center + 1, 0.05),
        "echo_time": round(rng.uniform(1.3, 4.6), 3),
        "repetition_time": round(rng.uniform(3.7, 9.0), 3),
        "acquisition_times": times_cell,
        "acquisition_date": f"{year}/{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}"
        if p.dated
        else None,
        "tcia_series_uid": "1.3.6.1.4.1.14519.5.2.1." + str(rng.randrange(10**37, 10**39)),
    }


def synthetic_order(seed: int) -> list[tuple[str, str]]:
    """``(patient_id, dataset)`` of every row of the built-in table, in table order."""
    rng = random.Random(f"mamamia-phantom-table-{seed}")
    ids = _ids(rng)
    order: list[tuple[str, str]] = []
    for i in range(max(COLLECTION_COUNTS.values())):
        for dataset in COLLECTION_COUNTS:
            if i < len(ids[dataset]):
                order.append((ids[dataset][i], dataset))
    return order


def synthetic_row(seed: int, patient_id: str, dataset: str) -> tuple[object, ...]:
    """One row of the built-in table (the 50 release-2 columns)."""
    # One generator per row keeps a row's values independent of the rows before it, so a few
    # chosen rows can be made without the other 1500.
    row = _row(random.Random(f"{seed}-{patient_id}"), patient_id, dataset)
    return tuple(row.get(column) for column in COLUMNS_R2)


def synthetic_rows(seed: int) -> tuple[tuple[str, ...], list[tuple[object, ...]]]:
    """Header (the 50 release-2 columns) and rows of the built-in table (1506 rows)."""
    return COLUMNS_R2, [synthetic_row(seed, pid, ds) for pid, ds in synthetic_order(seed)]
