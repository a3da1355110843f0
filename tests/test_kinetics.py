"""Kinetic and shape features: against the phantom's closed-form truth, SimpleITK's shape
statistics, random kinetic parameters (hypothesis), and the null cases."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

import mamamia
from conftest import PHANTOM_IDS, PHANTOM_SCALE, REAL_TABLE, LiveServer
from mamamia import read_clinical_table
from mamamia_ingest._kinetic_features import (
    BACKGROUND_FRACTION,
    FTV_PE_THRESHOLD,
    KINETIC_COLUMNS,
    KineticsAccumulator,
    choose_phases,
)
from mamamia_ingest._shape_features import SHAPE_COLUMNS, shape_features
from mamamia_ingest.phantom._anatomy import bias_slab
from mamamia_ingest.phantom._phantom_kinetics import CURVES, draw_kinetics
from mamamia_ingest.phantom._phantom_volume import CaseModel, build_case
from mamamia_ingest.phantom._spec import spec_from_record
from mamamia_schema import FEATURE_COLUMNS, FEATURE_DOCS

PHANTOM_SEED = 7  # conftest's phantom_raw_dir
# Tolerances of docs/features.md: noise moves per-voxel PE by ~2 % and SER by ~3 %.
PE_REL = 0.03
SER_REL = 0.04
FRACTION_ABS = 0.03


def _isolated_removed(keep: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Independent of the ingest's neighbour count: SimpleITK's 26-connected components, those
    of one voxel dropped."""
    labels = sitk.GetArrayFromImage(
        sitk.ConnectedComponent(sitk.GetImageFromArray(keep.astype(np.uint8)), True)
    )
    sizes = np.bincount(labels.ravel())
    big = sizes >= 2
    big[0] = False
    out: npt.NDArray[np.bool_] = big[labels]
    return out


def _truth(model: CaseModel, early: int, late: int, background: float) -> dict[str, Any]:
    """Closed-form PE, SER and FTV of the phantom tumour (noise-free)."""
    lesions = model.lesions
    inside = lesions.labels > 0
    pe_v, ser_v = model.truth(early, late)
    pe = np.full(inside.shape, np.nan)
    ser = np.full(inside.shape, np.nan)
    pe[inside] = pe_v
    ser[inside] = ser_v
    z0, y0, x0 = lesions.lo_zyx
    z1, y1, x1 = lesions.hi_zyx
    s0 = model.tumour_base * bias_slab(model.anatomy, z0, z1)[:, y0:y1, x0:x1]
    keep = inside & (pe >= FTV_PE_THRESHOLD) & (s0 > background) & np.isfinite(ser) & (ser >= 0)
    ftv = _isolated_removed(keep)
    spacing = np.prod(model.spec.spacing_xyz) / 1000.0
    # Per-voxel noise of PE and SER (each difference of two phases carries sqrt(2) sigma).
    sigma = model.noise_sigma * math.sqrt(2)
    s0_min = float(s0[inside].min())
    up_early = s0_min * pe_v / 100
    with np.errstate(divide="ignore", invalid="ignore"):
        ser_sigma = ser_v * sigma * np.sqrt(1 / up_early**2 + (ser_v / up_early) ** 2)
    return {
        "pe": pe[inside],
        "ser": ser[ftv],
        "ftv_voxels": int(ftv.sum()),
        "voxel_cm3": spacing,
        "pe_sigma": 100 * sigma * (1 + float(pe_v.max()) / 100) / s0_min,
        "ser_sigma": float(np.nanmax(ser_sigma[pe_v >= FTV_PE_THRESHOLD], initial=0.0)),
    }


def _in_percentile_band(value: float, truth: npt.NDArray[Any], q: float, sigma: float) -> bool:
    """``value`` lies within the truth's percentiles q -+ 3 (a few ranks move with noise),
    widened by 2.5 noise sigmas (a percentile of a noisy constant moves by up to ~2 sigma)."""
    lo = float(np.percentile(truth, max(q - 3, 0))) - 2.5 * sigma
    hi = float(np.percentile(truth, min(q + 3, 100))) + 2.5 * sigma
    return lo <= value <= hi


@pytest.fixture(scope="module")
def cases(catalog_dir: Path) -> dict[str, dict[str, Any]]:
    cat = mamamia.open(catalog_dir)
    rows = cat.sql("SELECT * FROM cases ORDER BY patient_id").to_pylist()
    return {r["patient_id"]: r for r in rows}


@pytest.fixture(scope="module")
def models(phantom_raw_dir: Path) -> dict[str, CaseModel]:
    records = read_clinical_table(phantom_raw_dir / "clinical_and_imaging_info.xlsx").by_id()
    return {
        pid: build_case(spec_from_record(records[pid], PHANTOM_SCALE), PHANTOM_SEED)
        for pid in PHANTOM_IDS
    }


def test_kinetics_equal_the_phantom_truth(
    cases: dict[str, dict[str, Any]], models: dict[str, CaseModel], phantom_raw_dir: Path
) -> None:
    checked = 0
    for pid, model in models.items():
        row = cases[pid]
        choice = choose_phases(row["acquisition_times"], model.spec.num_phases)
        assert choice is not None
        assert (row["kinetic_early_phase"], row["kinetic_late_phase"]) == (
            choice.early,
            choice.late,
        )
        assert row["kinetic_phase_fallback"] == choice.fallback
        pre = sitk.GetArrayFromImage(
            sitk.ReadImage(str(phantom_raw_dir / "images" / pid / f"{pid}_0000.nii.gz"))
        )
        background = BACKGROUND_FRACTION * float(np.percentile(pre.reshape(-1), 95.0))
        truth = _truth(model, choice.early, choice.late, background)
        pe = truth["pe"]
        assert row["pe_mean"] == pytest.approx(pe.mean(), rel=PE_REL), pid
        assert _in_percentile_band(row["pe_median"], pe, 50, truth["pe_sigma"]), pid
        assert _in_percentile_band(row["pe_p90"], pe, 90, truth["pe_sigma"]), pid
        assert _in_percentile_band(row["pe_peak"], pe, 95, truth["pe_sigma"]), pid
        n = truth["ftv_voxels"]
        assert row["ftv_cm3"] == pytest.approx(
            n * truth["voxel_cm3"], abs=(0.01 * n + 2) * truth["voxel_cm3"]
        ), pid
        ser = truth["ser"]
        if n == 0:
            assert row["ser_mean"] is None and row["washout_fraction"] is None
            continue
        assert row["ser_mean"] == pytest.approx(ser.mean(), rel=SER_REL), pid
        assert _in_percentile_band(row["ser_median"], ser, 50, truth["ser_sigma"]), pid
        assert _in_percentile_band(row["ser_p90"], ser, 90, truth["ser_sigma"]), pid
        if not choice.fallback:  # SER classes are drawn clear of the bounds at these phases
            fractions = {
                "persistent_fraction": np.mean(ser < 0.9),
                "plateau_fraction": np.mean((ser >= 0.9) & (ser <= 1.1)),
                "washout_fraction": np.mean(ser > 1.1),
            }
            for key, want in fractions.items():
                assert row[key] == pytest.approx(want, abs=FRACTION_ABS), (pid, key)
        checked += 1
    assert checked >= 4


def test_kinetic_curve_is_the_mean_tumour_intensity(
    cases: dict[str, dict[str, Any]], phantom_raw_dir: Path
) -> None:
    pid = "DUKE_001"
    mask = sitk.GetArrayFromImage(
        sitk.ReadImage(str(phantom_raw_dir / "segmentations" / "expert" / f"{pid}.nii.gz"))
    ).astype(bool)
    curve = cases[pid]["kinetic_curve"]
    assert len(curve) == len(cases[pid]["acquisition_times"])
    for p, value in enumerate(curve):
        image = sitk.ReadImage(str(phantom_raw_dir / "images" / pid / f"{pid}_{p:04d}.nii.gz"))
        assert value == pytest.approx(sitk.GetArrayFromImage(image)[mask].mean(), rel=1e-12)


def test_shape_equals_simpleitk_on_the_same_mask(
    cases: dict[str, dict[str, Any]], phantom_raw_dir: Path
) -> None:
    for pid in PHANTOM_IDS:
        mask = sitk.ReadImage(
            str(phantom_raw_dir / "segmentations" / "expert" / f"{pid}.nii.gz"), sitk.sitkUInt8
        )
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.ComputePerimeterOn()
        stats.ComputeFeretDiameterOn()
        stats.Execute(mask)
        row = cases[pid]
        assert row["shape_volume_cm3"] == pytest.approx(stats.GetPhysicalSize(1) / 1000, rel=1e-9)
        assert row["shape_volume_cm3"] == pytest.approx(row["tumor_volume_cm3"], rel=1e-9)
        assert row["shape_surface_mm2"] == pytest.approx(stats.GetPerimeter(1), rel=1e-9)
        assert row["shape_sphericity"] == pytest.approx(stats.GetRoundness(1), rel=1e-6)
        assert row["shape_elongation"] == pytest.approx(stats.GetElongation(1), rel=1e-6)
        assert row["shape_flatness"] == pytest.approx(stats.GetFlatness(1), rel=1e-6)
        assert row["shape_feret_mm"] == pytest.approx(stats.GetFeretDiameter(1), rel=1e-9)
        components = sitk.ConnectedComponentImageFilter()
        components.FullyConnectedOn()
        components.Execute(mask)
        assert row["shape_components"] == components.GetObjectCount()


def test_feature_columns_are_documented(catalog_dir: Path) -> None:
    cat = mamamia.open(catalog_dir)
    schema = cat.sql("SELECT * FROM cases LIMIT 0").schema
    for name in FEATURE_COLUMNS:
        assert name in schema.names
        assert FEATURE_DOCS[name].description
    assert set(KINETIC_COLUMNS) | set(SHAPE_COLUMNS) <= set(FEATURE_COLUMNS)
    assert FEATURE_DOCS["washout_fraction"].maximum == 1.0
    assert FEATURE_DOCS["ftv_cm3"].unit == "cm3"
    rows = cat.sql(
        "SELECT count(*) AS n FROM cases WHERE ftv_cm3 > 0 AND washout_fraction >= 0"
    ).to_pylist()
    assert rows[0]["n"] >= 1


# ---------------------------------------------------------------- random kinetics


def _series(
    kinetics: list[Any], times: list[float], rng: np.random.Generator, sigma: float
) -> tuple[list[npt.NDArray[np.int16]], npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """A 14x18x18 volume: tissue of 300, a two-compartment ellipsoid tumour (S0 600 under a
    gentle bias), the given kinetics per compartment, Gaussian noise."""
    z, y, x = np.ogrid[:14, :18, :18]
    rho2 = ((z - 7) / 5.0) ** 2 + ((y - 9) / 6.5) ** 2 + ((x - 9) / 6.0) ** 2
    mask = (rho2 <= 1).astype(np.uint8)
    label = np.where(rho2 <= 0.35, 0, 1)
    bias = 1.0 + 0.05 * (x - 9) / 9.0 + 0.0 * z
    phases = []
    for t in times:
        value = np.full((14, 18, 18), 300.0) * bias
        for c, k in enumerate(kinetics):
            value = np.where((mask == 1) & (label == c), 600.0 * bias * k.relative(t), value)
        value = value + rng.normal(0, sigma, value.shape)
        phases.append(np.rint(value).astype(np.int16))
    return phases, mask, label


@settings(max_examples=25, deadline=None)
@given(
    curves=st.tuples(st.sampled_from(CURVES), st.sampled_from(CURVES)),
    pe=st.floats(110.0, 300.0),
    step=st.floats(45.0, 180.0),
    num_phases=st.integers(3, 8),
    seed=st.integers(0, 2**31),
    with_times=st.booleans(),
)
def test_random_kinetics_against_closed_form(
    curves: tuple[str, str],
    pe: float,
    step: float,
    num_phases: int,
    seed: int,
    with_times: bool,
) -> None:
    rng = np.random.default_rng(seed)
    times = [i * step for i in range(num_phases)]
    choice = choose_phases(times if with_times else None, num_phases)
    assert choice is not None and choice.fallback is not with_times
    te, tl = times[choice.early], times[choice.late]
    kinetics = [draw_kinetics(rng, c, (pe, pe), te, tl) for c in curves]
    phases, mask, label = _series(kinetics, times, rng, sigma=2.0)
    acc = KineticsAccumulator(
        {"expert": mask}, times if with_times else None, num_phases, (1, 1, 1)
    )
    for p, data in enumerate(phases):
        acc.add(p, data)
    got = acc.features()
    inside = mask.astype(bool)
    n = [int(np.count_nonzero(inside & (label == c))) for c in (0, 1)]
    pe_true = np.array([k.pe(te) for k in kinetics])
    ser_true = np.array([k.ser(te, tl) for k in kinetics], dtype=float)
    weights = np.array(n) / sum(n)
    assert got["kinetic_early_phase"] == choice.early
    assert got["pe_mean"] == pytest.approx(float(weights @ pe_true), rel=0.02)
    assert got["ftv_cm3"] == pytest.approx(sum(n) / 1000.0, abs=2e-3)  # every voxel: PE >= 110
    assert got["ser_mean"] == pytest.approx(float(weights @ ser_true), rel=0.03)
    if with_times:
        for key, cls in (
            ("persistent_fraction", "persistent"),
            ("plateau_fraction", "plateau"),
            ("washout_fraction", "washout"),
        ):
            want = sum(w for w, c in zip(weights, curves, strict=True) if c == cls)
            assert got[key] == pytest.approx(want, abs=FRACTION_ABS), key
    else:
        assert any("acquisition times" in note for note in acc.notes)
    assert all(math.isfinite(v) for v in got["kinetic_curve"])


# ---------------------------------------------------------------- phases and nulls


def test_phase_choice() -> None:
    assert choose_phases([0, 60, 120, 180, 300, 420, 540], 7) == (
        choose_phases([0, 60, 120, 180, 300, 420, 540], 7)
    )
    c = choose_phases([0, 60, 120, 180, 300, 420, 540], 7)
    assert c is not None and (c.early, c.late, c.fallback) == (2, 5, False)
    c = choose_phases([10, 100, 200], 3)  # times relative to phase 0; late after early
    assert c is not None and (c.early, c.late) == (1, 2)
    c = choose_phases([0, 90, 90, 180], 4)  # not increasing: unusable
    assert c is not None and (c.early, c.late, c.fallback) == (1, 3, True)
    c = choose_phases([0, 90, 180], 4)  # one short
    assert c is not None and c.fallback
    assert choose_phases([0, 90], 2) is None


def _phases(n: int, value: float = 500.0) -> list[npt.NDArray[np.int16]]:
    return [np.full((6, 6, 6), value * (1 + 0.8 * (p > 0)), dtype=np.int16) for p in range(n)]


def test_nulls_and_reasons() -> None:
    mask = np.zeros((6, 6, 6), np.uint8)
    acc = KineticsAccumulator({"expert": mask}, [0, 90, 180], 3, (1, 1, 1))
    for p, d in enumerate(_phases(3)):
        acc.add(p, d)
    got = acc.features()
    assert all(got[k] is None for k in KINETIC_COLUMNS)
    assert any("empty" in note for note in acc.notes)

    mask[2:4, 2:4, 2:4] = 1
    acc = KineticsAccumulator({"expert": mask}, [0, 90], 2, (1, 1, 1))
    for p, d in enumerate(_phases(2)):
        acc.add(p, d)
    got = acc.features()
    assert got["pe_mean"] is None and got["ftv_cm3"] is None
    assert got["kinetic_curve"] == [500.0, 900.0]
    assert any("fewer than 3 phases" in note for note in acc.notes)

    acc = KineticsAccumulator({"expert": mask}, [0, 90, 180], 3, (1, 1, 1))
    for p, d in enumerate(_phases(3, value=0.0)):
        acc.add(p, d)
    got = acc.features()
    assert got["pe_mean"] is None and got["ser_mean"] is None
    assert any("zero pre-contrast" in note for note in acc.notes)

    empty = shape_features(np.zeros((4, 4, 4), np.uint8), (1, 1, 1))
    assert empty["shape_volume_cm3"] == 0.0 and empty["shape_components"] == 0
    assert empty["shape_sphericity"] is None and empty["shape_feret_mm"] is None


def test_phantom_truth_is_seeded_and_sized(models: dict[str, CaseModel]) -> None:
    for model in models.values():
        voxels = int((model.lesions.labels > 0).sum())
        assert voxels >= 1
        # Lesion volumes come from 0.5-100 cm3, capped to the breast and the volume.
        volume = voxels * np.prod(model.spec.spacing_xyz) / 1000.0
        assert volume < 150.0
    again = build_case(next(iter(models.values())).spec, PHANTOM_SEED)
    first = next(iter(models.values()))
    assert np.array_equal(again.lesions.labels, first.lesions.labels)
    assert again.lesions.kinetics == first.lesions.kinetics


def test_features_doc_example_runs(
    catalog_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (Path(__file__).parents[1] / "docs" / "features.md").read_text()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "catalog").symlink_to(catalog_dir)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/features.md", "exec"), namespace)
    cohort = namespace["large_washout"]
    cat = mamamia.open(catalog_dir)
    want = cat.sql(
        "SELECT patient_id FROM cases WHERE ftv_cm3 > 1 AND washout_fraction > 0.3"
    ).to_pylist()
    assert sorted(cohort.case_ids) == sorted(r["patient_id"] for r in want)


def test_schema_endpoint_serves_units_and_ranges(live_server: LiveServer) -> None:
    schema = httpx.get(live_server.url + "/v1/tables/cases/schema", timeout=60).json()
    columns = {c["name"]: c for c in schema["columns"]}
    for name in FEATURE_COLUMNS:
        doc = FEATURE_DOCS[name]
        got = columns[name]
        assert (got["unit"], got["description"], got["derived"]) == (
            doc.unit,
            doc.description,
            True,
        )
        assert (got["minimum"], got["maximum"]) == (doc.minimum, doc.maximum)
    assert columns["washout_fraction"]["maximum"] == 1.0
    assert columns["pe_peak"]["unit"] == "%" and columns["pe_peak"]["minimum"] == -100.0
    assert columns["age"]["minimum"] is None  # clinical columns carry no range


def test_fallback_and_empty_mask_reasons_reach_the_report(tmp_path: Path) -> None:
    """DUKE_406 has 6 phases but 5 acquisition times: fallback phases, flagged and noted; an
    emptied expert mask nulls the expert's kinetic columns, with its reason in the report."""
    from mamamia_ingest import ingest, write_phantom

    raw = tmp_path / "raw"
    write_phantom(raw, table=REAL_TABLE, ids="DUKE_406,NACT_01", scale=0.1, progress=False)
    mask_path = raw / "segmentations" / "expert" / "NACT_01.nii.gz"
    mask = sitk.ReadImage(str(mask_path))
    empty = sitk.GetImageFromArray(np.zeros(sitk.GetArrayFromImage(mask).shape, np.uint8))
    empty.CopyInformation(mask)
    sitk.WriteImage(empty, str(mask_path), useCompression=True)
    report = ingest(raw, tmp_path / "catalog", jobs=1, progress=False)
    rows = {
        r["patient_id"]: r
        for r in mamamia.open(tmp_path / "catalog").sql("SELECT * FROM cases").to_pylist()
    }
    notes = {(p.case, p.message) for p in report.problems if p.rule == "kinetics"}
    duke = rows["DUKE_406"]
    assert duke["kinetic_phase_fallback"] is True
    assert (duke["kinetic_early_phase"], duke["kinetic_late_phase"]) == (1, 5)
    assert duke["pe_mean"] is not None
    assert any(case == "DUKE_406" and "acquisition times" in m for case, m in notes)
    nact = rows["NACT_01"]
    per_phase = ("kinetic_early_phase", "kinetic_late_phase", "kinetic_phase_fallback")
    expert_columns = [
        c for c in KINETIC_COLUMNS if not c.startswith("auto_") and c not in per_phase
    ]
    assert all(nact[c] is None for c in expert_columns)
    assert nact["auto_pe_mean"] is not None  # the automatic mask is not empty
    assert nact["shape_volume_cm3"] == 0.0 and nact["shape_components"] == 0
    assert any(case == "NACT_01" and "empty" in m for case, m in notes)


def test_phantom_lesions_over_many_real_rows() -> None:
    """Every 10th row of the real table: lesions of 0.5-100 cm3 (capped to fit), masses and
    non-mass ones, second foci, and compartments whose curve class holds at the I-SPY phases."""
    records = list(read_clinical_table(REAL_TABLE).by_id().values())[::10]
    non_mass = focus = checked = 0
    for record in records:
        try:
            spec = spec_from_record(record, 0.1)
        except ValueError:
            continue  # a row the phantom refuses (its geometry columns are empty)
        model = build_case(spec, PHANTOM_SEED)
        lesions = model.lesions
        assert (lesions.labels > 0).any(), spec.patient_id
        volume = 4 / 3 * math.pi * float(np.prod(lesions.radii_mm)) / 1000
        assert volume <= 100.0, spec.patient_id
        non_mass += lesions.non_mass
        focus += lesions.focus
        choice = choose_phases(spec.times_s, spec.num_phases)
        if choice is None:
            continue
        te, tl = spec.times_s[choice.early], spec.times_s[choice.late]
        for label, k in enumerate(lesions.kinetics, start=1):
            ser = k.ser(te, tl)
            assert ser is not None
            if label == 1:  # the necrotic core never reaches the FTV threshold
                assert k.pe(te) <= 30.0 + 1e-9
            else:
                assert k.pe(te) >= 130.0 - 1e-9
            band = {"persistent": (0.0, 0.8), "plateau": (0.97, 1.03), "washout": (1.25, 1.6)}
            lo, hi = band[k.curve]
            assert lo - 1e-9 <= ser <= hi + 1e-9, (spec.patient_id, label, k.curve, ser)
        checked += 1
    assert checked >= 100
    assert 0.05 * checked < non_mass < 0.4 * checked
    assert 0.1 * checked < focus < 0.45 * checked
