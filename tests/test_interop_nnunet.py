"""nnU-Net v2 export: nnU-Net's own integrity check, SimpleITK re-reads, resumption, folds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nnunetv2  # noqa: F401  (the extras must be installed: make test installs them)
import numpy as np
import pytest
import SimpleITK

import mamamia


@pytest.fixture(scope="session")
def nnunet_export(catalog_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cat = mamamia.open(catalog_dir)
    out = tmp_path_factory.mktemp("nnunet")
    cohort = cat.cohort("has_expert")
    report = cohort.export_nnunet(
        out, dataset_id=105, name="MAMAMIA", phases=(0, 1), subtraction=True, jobs=2,
        progress=False,
    )  # fmt: skip
    assert report.written > 0
    assert report.skipped == 0
    return out / "Dataset105_MAMAMIA"


def test_nnunet_integrity_check_passes(
    nnunet_export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(nnunet_export), num_processes=1)
    printed = capsys.readouterr().out
    assert "verify_dataset_integrity Done" in printed
    assert "Warning" not in printed and "Error" not in printed


def test_dataset_json_and_layout(nnunet_export: Path, catalog_dir: Path) -> None:
    cat = mamamia.open(catalog_dir)
    cohort = cat.cohort("has_expert")
    body = json.loads((nnunet_export / "dataset.json").read_text())
    assert body["channel_names"] == {"0": "phase_0", "1": "phase_1", "2": "subtraction"}
    assert body["labels"] == {"background": 0, "tumor": 1}
    assert body["file_ending"] == ".nii.gz"
    assert body["mamamia"]["catalog_version"] == cat.version
    assert any("10.1038/s41597-025-04707-4" in json.dumps(c) for c in body["citation"])
    test_ids = set(cat.cohort("has_expert AND split = 'test'").case_ids)
    train_ids = set(cohort.case_ids) - test_ids
    assert test_ids and train_ids, "the phantom should have cases of both splits"
    assert body["numTraining"] == len(train_ids)
    labels = {p.name.removesuffix(".nii.gz") for p in (nnunet_export / "labelsTr").iterdir()}
    assert labels == train_ids
    tests = {p.name[: -len("_0000.nii.gz")] for p in (nnunet_export / "imagesTs").iterdir()}
    assert tests == test_ids
    splits = json.loads((nnunet_export / "splits_final.json").read_text())
    assert len(splits) == 5
    vals = [pid for fold in splits for pid in fold["val"]]
    assert sorted(vals) == sorted(train_ids)
    for fold in splits:
        assert set(fold["train"]) | set(fold["val"]) == train_ids
        assert not set(fold["train"]) & set(fold["val"])
    assert splits == mamamia.nnunet_folds(sorted(train_ids))


def test_exported_voxels_and_geometry_equal_the_catalog(
    nnunet_export: Path, catalog_dir: Path
) -> None:
    cat = mamamia.open(catalog_dir)
    for pid in cat.cohort("has_expert AND split = 'train'").case_ids:
        case = cat.case(pid)
        image = case.image
        for channel, expected in enumerate(
            (image[0], image[1], image[1].astype(np.float32) - image[0].astype(np.float32))
        ):
            read = SimpleITK.ReadImage(
                str(nnunet_export / "imagesTr" / f"{pid}_{channel:04d}.nii.gz")
            )
            voxels = SimpleITK.GetArrayFromImage(read)
            assert voxels.dtype == expected.dtype, pid
            assert np.array_equal(voxels, expected), (pid, channel)
            assert read.GetSpacing() == pytest.approx(image.spacing_xyz, abs=1e-6)
            assert read.GetOrigin() == pytest.approx(image.origin_xyz, abs=1e-4)
            assert read.GetDirection() == pytest.approx(image.direction, abs=1e-6)
        label = SimpleITK.ReadImage(str(nnunet_export / "labelsTr" / f"{pid}.nii.gz"))
        assert np.array_equal(SimpleITK.GetArrayFromImage(label), case.mask("expert").to_numpy())


def test_rerun_skips_finished_files_and_restores_a_missing_one(
    catalog_dir: Path, tmp_path: Path
) -> None:
    cat = mamamia.open(catalog_dir)
    cohort = cat.cohort("patient_id = 'DUKE_001'")
    options = mamamia.NnunetOptions(phases=(0,), test_split=None, jobs=1, progress=False)
    first = cohort.export_nnunet(tmp_path, options)
    assert (first.written, first.skipped) == (2, 0)
    folder = tmp_path / "Dataset105_MAMAMIA"
    (folder / "imagesTr" / "DUKE_001_0000.nii.gz").unlink()
    again = cohort.export_nnunet(tmp_path, options)
    assert (again.written, again.skipped) == (1, 1)
    assert not [p for p in folder.rglob("*") if ".partial-" in p.name]
    other = mamamia.NnunetOptions(phases=(1,), test_split=None, jobs=1, progress=False)
    with pytest.raises(mamamia.InvalidRequest, match="channels"):
        cohort.export_nnunet(tmp_path, other)


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"dataset_id": 1000}, "dataset_id"),
        ({"name": "bad name"}, "name"),
        ({"phases": (0, 0)}, "twice"),
        ({"label": "manual"}, "label"),
        ({"jobs": 0}, "jobs"),
    ],
)
def test_bad_options_name_the_parameter(keywords: dict[str, object], message: str) -> None:
    with pytest.raises(mamamia.InvalidRequest, match=message):
        mamamia.NnunetOptions(**keywords)  # type: ignore[arg-type]


def test_missing_phase_names_the_case(catalog_dir: Path, tmp_path: Path) -> None:
    cat = mamamia.open(catalog_dir)
    with pytest.raises(mamamia.InvalidRequest, match=r"case DUKE_001 has .* phases"):
        cat.cohort("patient_id = 'DUKE_001'").export_nnunet(tmp_path, phases=(40,), progress=False)
    # The refused export claimed nothing: the corrected one goes ahead in the same place.
    report = cat.cohort("patient_id = 'DUKE_001'").export_nnunet(
        tmp_path, phases=(0,), test_split=None, progress=False
    )
    assert report.written == 2


def test_export_over_a_server_equals_the_local_one(
    live_server: Any, catalog_dir: Path, tmp_path: Path
) -> None:
    where = "patient_id = 'NACT_01'"
    options = mamamia.NnunetOptions(
        phases=(0, 1), subtraction=True, test_split=None, jobs=2, progress=False
    )
    mamamia.open(catalog_dir).cohort(where).export_nnunet(tmp_path / "local", options)
    remote = mamamia.connect(live_server.url, cache_dir=tmp_path / "cache")
    remote.cohort(where).export_nnunet(tmp_path / "remote", options)
    local_dir, remote_dir = (tmp_path / side / "Dataset105_MAMAMIA" for side in ("local", "remote"))
    names = sorted(p.relative_to(local_dir) for p in local_dir.rglob("*.nii.gz"))
    assert names == sorted(p.relative_to(remote_dir) for p in remote_dir.rglob("*.nii.gz"))
    assert len(names) == 4
    for name in names:
        a = SimpleITK.ReadImage(str(local_dir / name))
        b = SimpleITK.ReadImage(str(remote_dir / name))
        assert np.array_equal(SimpleITK.GetArrayFromImage(a), SimpleITK.GetArrayFromImage(b))
        assert a.GetOrigin() == b.GetOrigin() and a.GetDirection() == b.GetDirection()
    local_json = json.loads((local_dir / "dataset.json").read_text())
    assert local_json == json.loads((remote_dir / "dataset.json").read_text())
