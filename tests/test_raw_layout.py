"""The raw MAMA-MIA layout (`mamamia.raw`): names in, classification out, and the rules for
duplicates, unknown files and invalid ids that `discover` applies."""

from __future__ import annotations

from pathlib import Path

import pytest

from mamamia.raw import (
    RawKind,
    RawName,
    classify,
    discover,
    image_name,
    locate_raw_files,
    mask_name,
    patient_info_name,
)
from mamamia_schema import Severity, VolumeKind

K = RawKind
CLASSIFY: list[tuple[str, RawName]] = [
    ("clinical_and_imaging_info.xlsx", RawName(K.CLINICAL_TABLE)),
    ("Clinical_And_Imaging_Info.XLSX", RawName(K.CLINICAL_TABLE)),
    ("clinical_and_imaging_info.csv", RawName(K.CLINICAL_TABLE)),
    ("train_test_splits.csv", RawName(K.SPLITS)),
    ("preliminary_automatic_segmentations_quality_scores.csv", RawName(K.QUALITY_SCORES)),
    ("automatic_segmentations_quality_scores.csv", RawName(K.QUALITY_SCORES)),
    ("quality_scores_v2.CSV", RawName(K.QUALITY_SCORES)),
    ("quality_scores.xlsx", RawName(K.UNKNOWN)),
    ("README.md", RawName(K.UNKNOWN)),
    ("SYNAPSE_METADATA_MANIFEST.tsv", RawName(K.IGNORED)),
    ("images/DUKE_001/synapse_metadata_manifest.tsv", RawName(K.IGNORED)),
    ("manifest.csv", RawName(K.IGNORED)),
    ("images/.DS_Store", RawName(K.IGNORED)),
    ("images/DUKE_001/.hidden.nii.gz", RawName(K.IGNORED)),
    ("images/DUKE_001/DUKE_001_0000.nii.gz", RawName(K.IMAGE, "DUKE_001", 0, True)),
    ("images/DUKE_001/duke_001_0003.nii", RawName(K.IMAGE, "DUKE_001", 3, False)),
    ("images/duke_001/DUKE_001_0012.NII.GZ", RawName(K.IMAGE, "DUKE_001", 12, True)),
    ("images/DUKE_001/DUKE_002_0000.nii.gz", RawName(K.UNKNOWN, "DUKE_001")),
    ("images/DUKE_001/DUKE_001_000.nii.gz", RawName(K.UNKNOWN, "DUKE_001")),
    ("images/DUKE_001/notes.txt", RawName(K.UNKNOWN, "DUKE_001")),
    ("images/DUKE_001_0000.nii.gz", RawName(K.UNKNOWN)),
    ("segmentations/expert/DUKE_001.nii.gz", RawName(K.EXPERT, "DUKE_001", None, True)),
    ("segmentations/Expert/duke_001.nii", RawName(K.EXPERT, "DUKE_001", None, False)),
    ("segmentations/automatic/nact_01.nii.gz", RawName(K.AUTOMATIC, "NACT_01", None, True)),
    ("segmentations/automatic/NACT_01.mha", RawName(K.UNKNOWN, "NACT_01")),
    ("segmentations/other/NACT_01.nii.gz", RawName(K.UNKNOWN, "NACT_01")),
    ("patient_info_files/duke_001.json", RawName(K.PATIENT_INFO, "DUKE_001")),
    ("patient_info_files/ISPY2_100.JSON", RawName(K.PATIENT_INFO, "ISPY2_100")),
    ("patient_info_files/duke_001.txt", RawName(K.UNKNOWN, "DUKE_001")),
    ("patient_info_files/sub/duke_001.json", RawName(K.UNKNOWN)),
    ("elsewhere/DUKE_001.nii.gz", RawName(K.UNKNOWN)),
]


@pytest.mark.parametrize(("path", "expected"), CLASSIFY, ids=[p for p, _ in CLASSIFY])
def test_classify(path: str, expected: RawName) -> None:
    assert classify(path) == expected
    assert classify(tuple(path.split("/"))) == expected


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("images/A/A_0000.nii.gz", VolumeKind.IMAGE),
        ("segmentations/expert/A.nii.gz", VolumeKind.EXPERT),
        ("segmentations/automatic/A.nii.gz", VolumeKind.AUTOMATIC),
        ("patient_info_files/A.json", None),
        ("train_test_splits.csv", None),
    ],
)
def test_volume_kind_is_the_schemas(name: str, kind: VolumeKind | None) -> None:
    assert classify(name).volume_kind is kind


def test_names_written_are_names_classified() -> None:
    for lowercase in (False, True):
        assert classify(image_name("DUKE_001", 2, lowercase=lowercase)) == RawName(
            K.IMAGE, "DUKE_001", 2, True
        )
        for kind in (VolumeKind.EXPERT, VolumeKind.AUTOMATIC):
            assert classify(mask_name(kind, "DUKE_001", lowercase=lowercase)).case == "DUKE_001"
        assert classify(patient_info_name("DUKE_001", lowercase=lowercase)).case == "DUKE_001"
    # Expert masks keep their uppercase name in copies that lowercase the rest.
    assert mask_name(VolumeKind.EXPERT, "DUKE_001", lowercase=True).endswith("/DUKE_001.nii.gz")
    assert mask_name("automatic", "DUKE_001", lowercase=True).endswith("/duke_001.nii.gz")
    with pytest.raises(ValueError, match="image"):
        mask_name(VolumeKind.IMAGE, "DUKE_001")


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


# (files present, what is chosen, the files a duplicate_file warning names)
DUPLICATES: list[tuple[tuple[str, ...], str, str]] = [
    (
        ("images/DUKE_001/DUKE_001_0000.nii", "images/DUKE_001/DUKE_001_0000.nii.gz"),
        "images/DUKE_001/DUKE_001_0000.nii.gz",
        "images/DUKE_001/DUKE_001_0000.nii",
    ),
    (
        ("images/DUKE_001/duke_001_0000.nii.gz", "images/DUKE_001/DUKE_001_0000.nii.gz"),
        "images/DUKE_001/DUKE_001_0000.nii.gz",
        "images/DUKE_001/duke_001_0000.nii.gz",
    ),
    (
        ("segmentations/expert/DUKE_001.nii", "segmentations/expert/duke_001.nii.gz"),
        "segmentations/expert/duke_001.nii.gz",
        "segmentations/expert/DUKE_001.nii",
    ),
    (
        ("patient_info_files/duke_001.json", "patient_info_files/DUKE_001.json"),
        "patient_info_files/DUKE_001.json",
        "patient_info_files/duke_001.json",
    ),
    (
        (
            "automatic_segmentations_quality_scores.csv",
            "preliminary_automatic_segmentations_quality_scores.csv",
        ),
        "preliminary_automatic_segmentations_quality_scores.csv",
        "automatic_segmentations_quality_scores.csv",
    ),
    (
        ("my_quality_scores.csv", "automatic_segmentations_quality_scores.csv"),
        "automatic_segmentations_quality_scores.csv",
        "my_quality_scores.csv",
    ),
    (
        ("clinical_and_imaging_info.csv", "clinical_and_imaging_info.xlsx"),
        "clinical_and_imaging_info.xlsx",
        "clinical_and_imaging_info.csv",
    ),
    (
        ("Clinical_and_Imaging_Info.xlsx", "clinical_and_imaging_info.xlsx"),
        "clinical_and_imaging_info.xlsx",
        "Clinical_and_Imaging_Info.xlsx",
    ),
]


@pytest.mark.parametrize(("files", "chosen", "ignored"), DUPLICATES, ids=[d[1] for d in DUPLICATES])
def test_duplicates_choose_one_and_warn_naming_both(
    tmp_path: Path, files: tuple[str, ...], chosen: str, ignored: str
) -> None:
    _touch(tmp_path, *files)
    layout = discover(tmp_path)
    picked = [
        layout.clinical,
        layout.quality,
        *layout.patient_info.values(),
        *(f.path for c in layout.cases.values() for f in c.files()),
    ]
    assert [layout.rel(p) for p in picked if p is not None] == [chosen]
    [warning] = [p for p in layout.problems if p.rule == "duplicate_file"]
    assert warning.severity is Severity.WARNING
    assert warning.file == ignored
    assert chosen in warning.message and ignored in warning.message


def test_discover_notes_unknown_files_and_rejects_bad_ids(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "README.md",
        "images/DUKE_001/DUKE_001_0000.nii.gz",
        "images/DUKE_001/DUKE_001_0001.nii.gz",
        "images/DUKE_001/preview.png",
        "images/DUKE_001/SYNAPSE_METADATA_MANIFEST.tsv",
        "images/NACT_01/NACT_01_0001.nii.gz",
        "segmentations/expert/bad.id.nii.gz",
        "patient_info_files/Ümlaut.json",
    )
    layout = discover(tmp_path)
    assert [f.role for f in layout.cases["DUKE_001"].files()] == ["image:0000", "image:0001"]
    assert layout.cases["NACT_01"].broken and layout.cases["NACT_01"].phases == []
    found = {(p.rule, p.severity, p.file) for p in layout.problems}
    assert found == {
        ("unknown_file", Severity.NOTE, "images/DUKE_001/preview.png"),
        ("missing_phase", Severity.ERROR, "images/NACT_01"),
        ("case_id", Severity.ERROR, "segmentations/expert/bad.id.nii.gz"),
        ("case_id", Severity.ERROR, "patient_info_files/Ümlaut.json"),
    }
    assert layout.patient_info == {}


def test_locate_raw_files_is_discover_without_volumes(tmp_path: Path) -> None:
    _touch(tmp_path, "clinical_and_imaging_info.xlsx", "images/X/Y_0000.nii.gz")
    raw = locate_raw_files(tmp_path)
    assert raw.clinical_table == tmp_path / "clinical_and_imaging_info.xlsx"
    assert [(p.rule, p.file) for p in raw.problems] == [
        ("missing_file", "train_test_splits.csv"),
        ("missing_file", "preliminary_automatic_segmentations_quality_scores.csv"),
    ]
