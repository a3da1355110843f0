"""The phantom dataset: layout, table-driven geometry (SimpleITK and nibabel), voxels, masks,
determinism, name variants, release 2, the CLI, rerun consistency and bounded memory."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import openpyxl
import pytest
import SimpleITK as sitk
from click.testing import CliRunner

from mamamia import (
    locate_raw_files,
    read_clinical_table,
    read_patient_info,
    read_quality_scores,
    read_splits,
)
from mamamia_ingest import PhantomError, PhantomReport, write_phantom
from mamamia_ingest._commands import phantom_command
from mamamia_schema import ClinicalRecord

REAL_TABLE = Path(__file__).parent / "data" / "clinical_and_imaging_info.xlsx"
# Axial and sagittal cases of each collection, a 512-matrix ISPY1 row, and DUKE_406 (6 phases
# but only 5 acquisition times, so the phantom falls back to evenly spaced times).
REAL_IDS = "DUKE_001,DUKE_406,ISPY1_1001,ISPY2_100899,NACT_01"
SCALE = 0.2
MANIFEST_COLUMNS = [
    "path",
    "parent",
    "name",
    "id",
    "synapseStore",
    "contentType",
    "used",
    "executed",
    "activityName",
    "activityDescription",
]


def expected_geometry(
    record: ClinicalRecord, scale: float
) -> tuple[tuple[int, ...], tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """(size_xyz, spacing_xyz, source extent_xyz, direction) as the issue states the rules."""
    assert record.pixel_spacing is not None and record.slice_thickness is not None
    assert record.image_rows and record.image_columns and record.num_slices
    px, py = record.pixel_spacing[0], record.pixel_spacing[1]
    if record.view is not None and record.view.value == "axial":
        n = (record.image_columns, record.image_rows, record.num_slices)
        s = (px, py, record.slice_thickness)
        direction = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    else:
        n = (record.num_slices, record.image_columns, record.image_rows)
        s = (record.slice_thickness, px, py)
        direction = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    size = tuple(max(1, round(k * scale)) for k in n)
    spacing = tuple(sp * k / m for sp, k, m in zip(s, n, size, strict=True))
    extent = tuple(sp * k for sp, k in zip(s, n, strict=True))
    return size, spacing, extent, direction


@pytest.fixture(scope="session")
def real_records() -> dict[str, ClinicalRecord]:
    return read_clinical_table(REAL_TABLE).by_id()


@pytest.fixture(scope="session")
def real_phantom(tmp_path_factory: pytest.TempPathFactory) -> PhantomReport:
    out = tmp_path_factory.mktemp("phantom") / "raw"
    return write_phantom(out, table=REAL_TABLE, ids=REAL_IDS, scale=SCALE, seed=3, progress=False)


@pytest.fixture(scope="session")
def release2_phantom(tmp_path_factory: pytest.TempPathFactory) -> PhantomReport:
    out = tmp_path_factory.mktemp("phantom_r2") / "raw"
    return write_phantom(
        out,
        table=REAL_TABLE,
        ids=["ISPY2_100899", "NACT_0[12]"],
        scale=0.1,
        release=2,
        lowercase_names=True,
        jobs=1,
        progress=False,
    )


@pytest.fixture(scope="session")
def synthetic_phantom(tmp_path_factory: pytest.TempPathFactory) -> PhantomReport:
    out = tmp_path_factory.mktemp("phantom_syn") / "raw"
    return write_phantom(out, cases=8, scale=0.1, seed=11, progress=False)


def read(path: Path) -> sitk.Image:
    image = sitk.ReadImage(str(path))
    return image


# ---------------------------------------------------------------- layout and table


def test_layout_matches_dataset_md(real_phantom: PhantomReport) -> None:
    root = real_phantom.root
    ids = REAL_IDS.split(",")
    assert [c.patient_id for c in real_phantom.cases] == ids
    for case in real_phantom.cases:
        images = sorted(p.name for p in (root / "images" / case.patient_id).glob("*.nii.gz"))
        assert images == [f"{case.patient_id}_{k:04d}.nii.gz" for k in range(case.num_phases)]
        assert (root / "segmentations" / "expert" / f"{case.patient_id}.nii.gz").is_file()
        assert (root / "segmentations" / "automatic" / f"{case.patient_id}.nii.gz").is_file()
    for name in (
        "clinical_and_imaging_info.xlsx",
        "train_test_splits.csv",
        "preliminary_automatic_segmentations_quality_scores.csv",
    ):
        assert (root / name).is_file(), name
    assert not (root / "patient_info_files").exists(), "release 1 has no per-case JSON"
    assert not list(root.rglob(".partial-*")), "temporary files left behind"
    for rel in real_phantom.files:
        assert (root / rel).is_file(), rel


def test_phase_count_follows_the_row(
    real_phantom: PhantomReport, real_records: dict[str, ClinicalRecord]
) -> None:
    for case in real_phantom.cases:
        assert case.num_phases == real_records[case.patient_id].num_phases
    duke406 = next(c for c in real_phantom.cases if c.patient_id == "DUKE_406")
    times = real_records["DUKE_406"].acquisition_times
    assert times is not None and len(times) == 5 and duke406.num_phases == 6
    steps = np.diff(duke406.phase_times_s)
    assert duke406.phase_times_s[0] == 0 and np.allclose(steps, steps[0]) and steps[0] > 0
    duke001 = next(c for c in real_phantom.cases if c.patient_id == "DUKE_001")
    assert list(duke001.phase_times_s) == real_records["DUKE_001"].acquisition_times


def test_table_reads_back_identically(
    real_phantom: PhantomReport, real_records: dict[str, ClinicalRecord]
) -> None:
    table = read_clinical_table(real_phantom.root / "clinical_and_imaging_info.xlsx")
    assert table.errors == []
    assert table.release == 1
    assert [r.patient_id for r in table.records] == REAL_IDS.split(",")
    for record in table.records:
        assert record.model_dump() == real_records[record.patient_id].model_dump()
    # Raw cells too: the chosen rows are copies of the source's rows, and the legend is copied.
    source = openpyxl.load_workbook(REAL_TABLE, read_only=True)
    ours = openpyxl.load_workbook(
        real_phantom.root / "clinical_and_imaging_info.xlsx", read_only=True
    )
    assert ours.sheetnames == ["dataset_info", "legend"]
    src_rows = list(source["dataset_info"].iter_rows(values_only=True))
    our_rows = list(ours["dataset_info"].iter_rows(values_only=True))
    assert our_rows[0] == src_rows[0]
    by_id = {r[0]: r for r in src_rows[1:]}
    for row in our_rows[1:]:
        assert row == by_id[row[0]]

    def non_empty(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
        # Sheet dimensions may add trailing empty cells; the content is what must match.
        out = []
        for r in rows:
            cells = list(r)
            while cells and cells[-1] is None:
                cells.pop()
            if cells:
                out.append(tuple(cells))
        return out

    assert non_empty(list(ours["legend"].iter_rows(values_only=True))) == non_empty(
        list(source["legend"].iter_rows(values_only=True))
    )


def test_splits_and_quality_scores(real_phantom: PhantomReport) -> None:
    root = real_phantom.root
    with (root / "train_test_splits.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["train_split", "test_split"]
    assert all(len(r) == 2 for r in rows)
    train = [r[0] for r in rows[1:] if r[0]]
    test = [r[1] for r in rows[1:] if r[1]]
    assert sorted(train + test) == sorted(REAL_IDS.split(","))
    assert train and test
    assert len(rows) - 1 == max(len(train), len(test)), "shorter column padded with blanks"
    splits = read_splits(root / "train_test_splits.csv")
    assert splits.problems == []
    assert {k: v.value for k, v in splits.splits.items()} == {
        c.patient_id: c.split for c in real_phantom.cases
    }

    quality = read_quality_scores(root / "preliminary_automatic_segmentations_quality_scores.csv")
    assert [p for p in quality.problems if p.severity.value == "error"] == []
    assert set(quality.rows) == set(REAL_IDS.split(","))
    with (root / "preliminary_automatic_segmentations_quality_scores.csv").open() as fh:
        header = fh.readline().strip().split(",")
    assert header == ["patient_id", "expert_1_qs", "expert_2_qs"]
    for case in real_phantom.cases:
        assert 0.5 < case.dice < 1.0, case.patient_id


def test_synapse_manifests(real_phantom: PhantomReport) -> None:
    root = real_phantom.root
    folders = {root} | {p for p in root.rglob("*") if p.is_dir()}
    data_files = {
        p
        for p in root.rglob("*")
        if p.is_file() and p.name != "SYNAPSE_METADATA_MANIFEST.tsv" and not p.name.startswith(".")
    }
    for folder in folders:
        manifest = folder / "SYNAPSE_METADATA_MANIFEST.tsv"
        assert manifest.is_file(), folder
        lines = manifest.read_text().splitlines()
        assert lines[0].split("\t") == MANIFEST_COLUMNS
        rows = [dict(zip(MANIFEST_COLUMNS, line.split("\t"), strict=True)) for line in lines[1:]]
        listed = {Path(r["path"]) for r in rows}
        below = {f.resolve() for f in data_files if folder in f.parents}
        assert listed == below, folder  # every file at or below the folder, as synapseutils does
        for r in rows:
            assert r["name"] == Path(r["path"]).name
            assert re.fullmatch(r"syn\d+", r["id"]) and re.fullmatch(r"syn\d+", r["parent"])
            assert r["synapseStore"] == "True"
    ids = [
        line.split("\t")[3]
        for line in (root / "SYNAPSE_METADATA_MANIFEST.tsv").read_text().splitlines()[1:]
    ]
    assert len(ids) == len(set(ids))


# ---------------------------------------------------------------- geometry


def test_geometry_follows_row_and_scale(
    real_phantom: PhantomReport, real_records: dict[str, ClinicalRecord]
) -> None:
    root = real_phantom.root
    views = set()
    for case in real_phantom.cases:
        record = real_records[case.patient_id]
        size, spacing, extent, direction = expected_geometry(record, SCALE)
        views.add((record.dataset.value if record.dataset else None, case.view))
        files = [root / rel for rel in (*case.images, case.expert, case.automatic)]
        for path in files:
            image = read(path)
            assert image.GetSize() == size, path.name
            assert np.allclose(image.GetSpacing(), spacing, rtol=1e-6), path.name
            assert np.allclose(image.GetDirection(), direction), path.name
            code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
                image.GetDirection()
            )
            assert code == ("LPS" if record.view and record.view.value == "axial" else "RAS")
            # Physical extent kept exactly under --scale (up to NIfTI's float32 pixdim).
            got_extent = np.array(image.GetSize()) * np.array(image.GetSpacing())
            assert np.allclose(got_extent, extent, rtol=1e-6), path.name

            nii = nib.load(path)
            assert nii.shape == size, path.name  # nibabel's array is (x, y, z)
            assert np.allclose(nii.header.get_zooms()[:3], spacing, rtol=1e-6), path.name
            expected_codes = ("L", "P", "S") if code == "LPS" else ("R", "A", "S")
            assert nib.aff2axcodes(nii.affine) == expected_codes, path.name
            # nibabel's affine is SimpleITK's LPS geometry flipped to RAS.
            lps = np.diag(-1.0 * np.ones(4))
            lps[2, 2] = lps[3, 3] = 1.0
            affine = lps @ nii.affine
            d = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
            assert np.allclose(affine[:3, :3], d, atol=1e-4)
            assert np.allclose(affine[:3, 3], image.GetOrigin(), atol=1e-3)
        assert np.allclose(case.spacing_xyz, spacing) and case.size_xyz == size
    assert views == {
        ("DUKE", "axial"),
        ("ISPY1", "sagittal"),
        ("ISPY2", "axial"),
        ("NACT", "sagittal"),
    }


def test_masks_share_the_image_geometry(real_phantom: PhantomReport) -> None:
    root = real_phantom.root
    for case in real_phantom.cases:
        reference = read(root / case.images[1])  # experts segmented on the first post-contrast
        for rel in (*case.images, case.expert, case.automatic):
            image = read(root / rel)
            assert image.GetSize() == reference.GetSize()
            assert image.GetSpacing() == reference.GetSpacing()
            assert image.GetOrigin() == reference.GetOrigin()
            assert image.GetDirection() == reference.GetDirection()
        assert np.allclose(reference.GetOrigin(), case.origin_xyz, atol=1e-3)


def test_geometry_is_scale_invariant(
    tmp_path: Path, real_records: dict[str, ClinicalRecord]
) -> None:
    """The same case at two scales covers the same physical box, tumour at the same place."""
    boxes = []
    for scale, sub in ((0.1, "a"), (0.25, "b")):
        report = write_phantom(
            tmp_path / sub, table=REAL_TABLE, ids="ISPY1_1001", scale=scale, jobs=1, progress=False
        )
        case = report.cases[0]
        image = read(report.root / case.expert)
        size = np.array(image.GetSize())
        spacing = np.array(image.GetSpacing())
        d = np.array(image.GetDirection()).reshape(3, 3)
        corner_lo = np.array(image.GetOrigin()) - d @ (spacing / 2)
        corner_hi = corner_lo + d @ (spacing * size)
        mask = sitk.GetArrayFromImage(image)
        centre_idx = np.argwhere(mask).mean(axis=0)[::-1]  # (x, y, z)
        centre = np.array(image.GetOrigin()) + d @ (spacing * centre_idx)
        boxes.append((corner_lo, corner_hi, centre, spacing.max()))
    (lo_a, hi_a, c_a, s_a), (lo_b, hi_b, c_b, s_b) = boxes
    assert np.allclose(lo_a, lo_b, atol=1e-3) and np.allclose(hi_a, hi_b, atol=1e-3)
    assert np.linalg.norm(c_a - c_b) < max(s_a, s_b)


# ---------------------------------------------------------------- voxels


def test_voxels_masks_and_enhancement(real_phantom: PhantomReport) -> None:
    root = real_phantom.root
    for case in real_phantom.cases:
        expert = sitk.GetArrayFromImage(read(root / case.expert))
        automatic = sitk.GetArrayFromImage(read(root / case.automatic))
        assert expert.dtype == np.uint8 and automatic.dtype == np.uint8
        assert set(np.unique(expert)) == {0, 1} and set(np.unique(automatic)) == {0, 1}
        inside = expert.astype(bool)
        auto = automatic.astype(bool)
        dice = 2 * (inside & auto).sum() / (inside.sum() + auto.sum())
        assert 0.5 < dice < 1.0 and dice == pytest.approx(case.dice)
        where = np.argwhere(inside)
        assert tuple(where.min(axis=0)) == case.tumor_bbox_min_zyx
        assert tuple(where.max(axis=0) + 1) == case.tumor_bbox_max_zyx
        phases = [sitk.GetArrayFromImage(read(root / rel)) for rel in case.images]
        for array in phases:
            assert array.dtype == np.int16 and array.shape == expert.shape
            assert array.min() >= 0 and array.std() > 0
        pre, post = phases[0], phases[1]
        body = pre > 0
        tissue = body & ~inside
        assert tissue.sum() > 0.2 * body.size, "mostly tissue, not air"
        assert post[inside].mean() > pre[inside].mean() + 150, "tumour enhances after contrast"
        assert post[inside].mean() > 1.5 * post[tissue].mean(), "tumour brighter than tissue"
        # Most background tissue barely changes between phases (noise differs, anatomy does
        # not); the heart's blood pool, a small part of it, enhances strongly.
        change = np.abs(post[tissue].astype(float) - pre[tissue]) / np.maximum(pre[tissue], 1)
        assert np.median(change) < 0.25
        assert not np.array_equal(pre[tissue], post[tissue]), "each phase has its own noise"


def test_deterministic_for_a_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def digest(report: PhantomReport) -> dict[str, str]:
        return {
            rel: hashlib.sha256((report.root / rel).read_bytes()).hexdigest()
            for rel in report.files
            if not rel.endswith(".tsv")  # manifests hold absolute paths
        }

    # Through the worker pool even though the phantom is small, and once in-process.
    monkeypatch.setattr("mamamia_ingest.phantom._writer._POOL_MIN_VOXELS", 0)
    a = write_phantom(tmp_path / "a", cases=3, scale=0.1, seed=5, jobs=2, progress=False)
    b = write_phantom(tmp_path / "b", cases=3, scale=0.1, seed=5, jobs=1, progress=False)
    c = write_phantom(tmp_path / "c", cases=3, scale=0.1, seed=6, jobs=1, progress=False)
    da, db, dc = digest(a), digest(b), digest(c)
    assert da == db, "same seed, byte-identical files (the table included), pool or not"
    assert a.cases == b.cases
    duke = "images/DUKE_001/DUKE_001_0001.nii.gz"
    assert duke in da and duke in dc and da[duke] != dc[duke], "another seed, other voxels"


# ---------------------------------------------------------------- variants


def test_lowercase_names_and_release_2(release2_phantom: PhantomReport) -> None:
    root = release2_phantom.root
    for case in release2_phantom.cases:
        pid = case.patient_id
        lower = pid.lower()
        assert sorted(p.name for p in (root / "images" / pid).glob("*.nii.gz")) == [
            f"{lower}_{k:04d}.nii.gz" for k in range(case.num_phases)
        ]
        assert (root / "segmentations" / "automatic" / f"{lower}.nii.gz").is_file()
        assert (root / "segmentations" / "expert" / f"{pid}.nii.gz").is_file()
        assert not (root / "segmentations" / "automatic" / f"{pid}.nii.gz").exists()
        assert (root / "patient_info_files" / f"{lower}.json").is_file()
    raw = locate_raw_files(root)
    assert raw.problems == []
    assert set(raw.patient_info) == {c.patient_id for c in release2_phantom.cases}

    table = read_clinical_table(root / "clinical_and_imaging_info.xlsx")
    assert table.release == 2 and table.errors == []
    header = next(
        openpyxl.load_workbook(root / "clinical_and_imaging_info.xlsx", read_only=True)[
            "dataset_info"
        ].iter_rows(values_only=True)
    )
    assert header.index("breast_density") == header.index("bmi_group") + 1
    assert len(header) == 50
    records = table.by_id()
    for case in release2_phantom.cases:
        assert case.num_phases <= 6 and records[case.patient_id].num_phases == case.num_phases
        info, problems = read_patient_info(root / case.patient_info)  # type: ignore[arg-type]
        assert info is not None and problems == []
        assert info.patient_id == case.patient_id
        data = json.loads((root / case.patient_info).read_text())  # type: ignore[operator]
        assert set(data) >= {"patient_id", "clinical_data", "primary_lesion", "imaging_data"}
        assert data["imaging_data"]["dataset"] == case.dataset
        box = data["primary_lesion"]["breast_coordinates"]
        # x_* index numpy axis 0 (our z), z_* axis 2 (our x); min inclusive, max exclusive.
        lo = (box["x_min"], box["y_min"], box["z_min"])
        hi = (box["x_max"], box["y_max"], box["z_max"])
        shape = case.shape_zyx
        for k in range(3):
            assert 0 <= lo[k] <= case.tumor_bbox_min_zyx[k]
            assert case.tumor_bbox_max_zyx[k] <= hi[k] <= shape[k]
        expert = sitk.GetArrayFromImage(read(root / case.expert))
        inside = expert[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        assert inside.sum() == expert.sum(), "the whole tumour lies in breast_coordinates"


def test_release_2_caps_phases(tmp_path: Path) -> None:
    # ISPY2_100899 has 8 phases in the first release; release 2 keeps at most 6.
    report = write_phantom(
        tmp_path / "r2", table=REAL_TABLE, ids="ISPY2_100899", scale=0.05, release=2, progress=False
    )
    (case,) = report.cases
    assert case.num_phases == 6 and len(case.images) == 6
    record = read_clinical_table(report.root / "clinical_and_imaging_info.xlsx").records[0]
    assert record.num_phases == 6 and record.acquisition_times is not None
    assert len(record.acquisition_times) == 6


def test_release_conversion_both_ways(release2_phantom: PhantomReport, tmp_path: Path) -> None:
    # A release-2 table comes through unchanged by default, and loses breast_density as release 1.
    source = release2_phantom.root / "clinical_and_imaging_info.xlsx"
    same = write_phantom(tmp_path / "same", table=source, ids="NACT_01", scale=0.05, progress=False)
    assert same.release == 2
    back = write_phantom(
        tmp_path / "r1", table=source, ids="NACT_01", scale=0.05, release=1, progress=False
    )
    table = read_clinical_table(back.root / "clinical_and_imaging_info.xlsx")
    assert table.release == 1
    assert table.errors == []
    original = read_clinical_table(source).by_id()["NACT_01"].model_dump()
    original["breast_density"] = None
    assert table.records[0].model_dump() == original
    assert not (back.root / "patient_info_files").exists()


def test_csv_table(tmp_path: Path, real_records: dict[str, ClinicalRecord]) -> None:
    wb = openpyxl.load_workbook(REAL_TABLE, read_only=True)
    rows = list(wb["dataset_info"].iter_rows(values_only=True))
    header = rows[0]
    keep = [r for r in rows[1:] if r[0] in ("DUKE_002", "NACT_02")]
    with (tmp_path / "table.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(["" if c is None else c for c in r] for r in keep)
    report = write_phantom(tmp_path / "raw", table=tmp_path / "table.csv", cases=2, scale=0.05)
    assert [c.patient_id for c in report.cases] == ["DUKE_002", "NACT_02"]
    for case in report.cases:
        size, spacing, _, _ = expected_geometry(real_records[case.patient_id], 0.05)
        assert read(report.root / case.images[0]).GetSize() == size
        assert np.allclose(case.spacing_xyz, spacing)
    table = read_clinical_table(report.root / "clinical_and_imaging_info.xlsx")
    assert table.errors == []
    legend = openpyxl.load_workbook(report.root / "clinical_and_imaging_info.xlsx")["legend"]
    assert legend.max_row > 50, "a built-in legend when the source has none"


def test_synthetic_table(synthetic_phantom: PhantomReport) -> None:
    root = synthetic_phantom.root
    table = read_clinical_table(root / "clinical_and_imaging_info.xlsx")
    assert table.errors == [] and table.release == 1 and len(table.records) == 8
    header = next(
        openpyxl.load_workbook(root / "clinical_and_imaging_info.xlsx", read_only=True)[
            "dataset_info"
        ].iter_rows(values_only=True)
    )
    assert len(header) == 49
    patterns = {
        "DUKE": r"DUKE_\d{3}",
        "ISPY1": r"ISPY1_\d{4}",
        "ISPY2": r"ISPY2_\d{6}",
        "NACT": r"NACT_\d{2}",
    }
    seen = set()
    for record, case in zip(table.records, synthetic_phantom.cases, strict=True):
        assert record.dataset is not None
        seen.add(record.dataset.value)
        assert re.fullmatch(patterns[record.dataset.value], record.patient_id)
        assert record.num_phases is not None and 3 <= record.num_phases <= 11
        size, spacing, _, _ = expected_geometry(record, 0.1)
        assert case.size_xyz == size and np.allclose(case.spacing_xyz, spacing)
        image = read(root / case.images[0])
        assert image.GetSize() == size
    assert seen == set(patterns)
    legend = openpyxl.load_workbook(root / "clinical_and_imaging_info.xlsx", read_only=True)[
        "legend"
    ]
    fields = {r[0] for r in legend.iter_rows(values_only=True) if r and r[0]}
    assert {"patient_id", "view", "acquisition_times"} <= fields


def test_synthetic_table_is_plausible_and_seeded(tmp_path: Path) -> None:
    from mamamia_ingest.phantom._phantom_columns import COLUMNS_R2
    from mamamia_ingest.phantom._synthetic import synthetic_rows

    header, rows = synthetic_rows(0)
    assert header == COLUMNS_R2 and len(rows) == 1506
    assert synthetic_rows(0) == synthetic_rows(0) and synthetic_rows(0) != synthetic_rows(1)
    col = {name: i for i, name in enumerate(header)}
    assert {r[col["pcr"]] for r in rows} == {0, 1, None}
    assert any(r[col["acquisition_times"]] is None for r in rows)
    assert {r[col["num_phases"]] for r in rows} >= {3, 4, 5, 6}
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r[col["dataset"]])] = counts.get(str(r[col["dataset"]]), 0) + 1
    assert counts == {"DUKE": 291, "ISPY1": 171, "ISPY2": 980, "NACT": 64}


def test_ids_patterns_select_cases(tmp_path: Path) -> None:
    report = write_phantom(
        tmp_path / "ids", ids="nact_0*,DUKE_00[12]", scale=0.05, seed=11, progress=False
    )
    got = [c.patient_id for c in report.cases]
    assert got and all(re.fullmatch(r"NACT_0\d|DUKE_00[12]", g) for g in got)
    assert {"DUKE_001", "DUKE_002", "NACT_01"} <= set(got)


# ---------------------------------------------------------------- reruns and bad input


def test_rerun_overwrites_consistently(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    first = write_phantom(out, cases=4, scale=0.05, progress=False)
    (out / "images" / first.cases[0].patient_id / ".partial-dead-x.nii.gz").write_bytes(b"")
    second = write_phantom(
        out, ids="NACT_0[1-3]", scale=0.05, lowercase_names=True, release=2, progress=False
    )
    on_disk = {
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }
    assert on_disk == set(second.files)
    assert {p.name for p in (out / "images").iterdir() if p.is_dir()} == {
        c.patient_id for c in second.cases
    }
    table = read_clinical_table(out / "clinical_and_imaging_info.xlsx")
    assert [r.patient_id for r in table.records] == [c.patient_id for c in second.cases]
    marker = json.loads((out / ".mamamia-phantom.json").read_text())
    assert marker["complete"] is True
    assert marker["cases"] == [c.patient_id for c in second.cases]
    # A run killed half-way leaves its marker with complete = false: the next run may clean up.
    marker["complete"] = False
    (out / ".mamamia-phantom.json").write_text(json.dumps(marker))
    third = write_phantom(out, cases=2, scale=0.05, progress=False)
    assert not (out / "patient_info_files").exists()
    assert {p.name for p in (out / "images").iterdir() if p.is_dir()} == {
        c.patient_id for c in third.cases
    }


def test_rerun_after_a_killed_run(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    code = (
        "import sys; from mamamia_ingest import write_phantom; "
        "write_phantom(sys.argv[1], cases=30, scale=0.3, jobs=1, progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(out.glob("images/*/*.nii.gz"))) >= 3:
                break
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode != 0, "the run was meant to be killed half-way"
    marker = json.loads((out / ".mamamia-phantom.json").read_text())
    assert marker["complete"] is False
    report = write_phantom(out, cases=2, scale=0.05, progress=False)
    on_disk = {
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and p.name != ".mamamia-phantom.json"
    }
    assert on_disk == set(report.files), "no partial or temporary files of the killed run left"


def test_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(PhantomError, match="not written by mamamia phantom"):
        write_phantom(tmp_path, cases=1, scale=0.05, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_bad_input_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(PhantomError, match=r"--scale"):
        write_phantom(tmp_path / "a", cases=1, scale=0, progress=False)
    with pytest.raises(PhantomError, match=r"--ids pattern 'NOPE_\*'"):
        write_phantom(tmp_path / "b", ids="NOPE_*", scale=0.05, progress=False)
    with pytest.raises(PhantomError, match=r"--cases 5000"):
        write_phantom(tmp_path / "c", cases=5000, scale=0.05, progress=False)
    with pytest.raises(PhantomError, match=r"--release 3"):
        write_phantom(tmp_path / "d", cases=1, scale=0.05, release=3, progress=False)
    # A row without a matrix size: the error names the case and the column.
    wb = openpyxl.load_workbook(REAL_TABLE, read_only=True)
    rows = list(wb["dataset_info"].iter_rows(values_only=True))[:3]
    header = list(rows[0])
    broken = list(rows[2])
    broken[header.index("image_rows")] = None
    bad = openpyxl.Workbook()
    sheet = bad.active
    assert sheet is not None
    sheet.title = "dataset_info"
    for row in (rows[0], rows[1], broken):
        sheet.append(list(row))
    bad.save(tmp_path / "bad.xlsx")
    case = broken[0]
    with pytest.raises(PhantomError, match=rf"case {case}: column image_rows"):
        write_phantom(
            tmp_path / "e", table=tmp_path / "bad.xlsx", cases=2, scale=0.05, progress=False
        )
    assert not (tmp_path / "e" / "images").exists(), "nothing written for a bad table"
    # A value the table reader rejects (and nulls): the error quotes the cell.
    broken[header.index("image_rows")] = rows[2][header.index("image_rows")]
    broken[header.index("view")] = "coronal"
    sheet.delete_rows(3)
    sheet.append(list(broken))
    bad.save(tmp_path / "bad.xlsx")
    with pytest.raises(PhantomError, match=rf"case {case}: column view = 'coronal'"):
        write_phantom(
            tmp_path / "f", table=tmp_path / "bad.xlsx", cases=2, scale=0.05, progress=False
        )


# ---------------------------------------------------------------- CLI


def test_cli_with_click_runner(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        phantom_command,
        [str(out), "--cases", "2", "--scale", "0.05", "--seed", "4", "--release", "2", "-j", "1"],
    )
    assert result.exit_code == 0, result.output
    assert str(out.resolve()) in result.output and "2 cases" in result.output
    assert len(list((out / "patient_info_files").glob("*.json"))) == 2
    bad = CliRunner().invoke(phantom_command, [str(tmp_path / "x"), "--ids", "ZZZ_*"])
    assert bad.exit_code != 0 and "ZZZ_*" in bad.output
    usage = CliRunner().invoke(phantom_command, [str(tmp_path / "y"), "--scale", "-1"])
    assert usage.exit_code == 2


def test_console_script(tmp_path: Path) -> None:
    script = shutil.which("mamamia", path=str(Path(sys.executable).parent)) or shutil.which(
        "mamamia"
    )
    assert script is not None, "the mamamia console script is installed with the workspace"
    out = tmp_path / "console"
    done = subprocess.run(
        [script, "phantom", str(out), "--ids", "NACT_01", "--scale", "0.1", "--lowercase-names"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "NACT 1" in done.stdout
    assert (out / "images" / "NACT_01" / "nact_01_0000.nii.gz").is_file()
    assert done.stderr.count("\r") == 0, "no progress bar when stderr is not a terminal"


# ---------------------------------------------------------------- memory


_PEAK = textwrap.dedent(
    """
    import json, re, resource, sys
    from pathlib import Path

    def status(key):
        text = Path("/proc/self/status").read_text()
        return int(re.search(key + r":\\s+(\\d+)", text).group(1)) * 1024

    def reset_peak():
        # Linux: writing 5 to clear_refs resets the peak RSS to the current RSS, so the peak
        # after it is the growth's own, not a leftover of the warm-up (table parsing).
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return status("VmRSS"), lambda: status("VmHWM")
        except OSError:
            peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            return peak(), peak

    from mamamia_ingest import write_phantom

    out, table = sys.argv[1], sys.argv[2]
    # Warm up (imports, table parsing, one tiny case) so the baseline holds everything but
    # the volumes; then the huge row.
    write_phantom(out + "/small", table=table, ids="NACT_01", scale=0.05, jobs=1, progress=False)
    before, peak = reset_peak()
    report = write_phantom(out + "/huge", table=table, ids="ISPY2_275034", scale=0.5, jobs=1,
                           progress=False)
    case = report.cases[0]
    print(json.dumps({"before": before, "after": peak(), "size": case.size_xyz,
                      "phases": case.num_phases}))
    """
)


def test_huge_row_is_written_with_bounded_memory(tmp_path: Path) -> None:
    """ISPY2_275034 (1024x1024x160, 7 phases) at scale 0.5: 7 x 42 MB of int16. Generation is
    phase by phase and slab by slab, so peak memory grows by far less than the whole series."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, str(tmp_path), str(REAL_TABLE)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    x, y, z = result["size"]
    assert (x, y, z) == (512, 512, 80)
    assert result["phases"] == 7
    phase_bytes = x * y * z * 2
    series_bytes = phase_bytes * result["phases"]
    grown = result["after"] - result["before"]
    print(f"peak growth {grown / 2**20:.0f} MiB for a {series_bytes / 2**20:.0f} MiB series")
    assert 0 < grown < series_bytes / 2, (grown, series_bytes)
    assert len(list((tmp_path / "huge" / "images" / "ISPY2_275034").glob("*.nii.gz"))) == 7
