"""``mamamia export nnunet|challenge`` and ``mamamia cite``; the challenge layout; citations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK
from click.testing import CliRunner

import mamamia
from mamamia._cli import main


def test_cli_export_nnunet_from_a_cohort_file(catalog_dir: Path, tmp_path: Path) -> None:
    cat = mamamia.open(catalog_dir)
    saved = cat.cohort("patient_id IN ('DUKE_002', 'NACT_02')").save(tmp_path / "cohort.json")
    result = CliRunner().invoke(
        main,
        [
            "export", "nnunet", str(tmp_path / "out"), "--cohort-file", str(saved),
            "--catalog", str(catalog_dir), "--dataset-id", "7", "--name", "Tiny",
            "--phases", "1", "--subtraction", "--test-split", "", "--jobs", "2",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "Dataset007_Tiny"
    body = json.loads((folder / "dataset.json").read_text())
    assert body["channel_names"] == {"0": "phase_1", "1": "subtraction"}
    assert body["numTraining"] == 2
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [
        "DUKE_002_0000.nii.gz", "DUKE_002_0001.nii.gz", "NACT_02_0000.nii.gz", "NACT_02_0001.nii.gz",
    ]  # fmt: skip
    rerun = CliRunner().invoke(
        main,
        [
            "export", "nnunet", str(tmp_path / "out"), "--cohort-file", str(saved),
            "--catalog", str(catalog_dir), "--dataset-id", "7", "--name", "Tiny",
            "--phases", "1", "--subtraction", "--test-split", "",
        ],
    )  # fmt: skip
    assert rerun.exit_code == 0, rerun.output
    assert "0 files written, 6 already there" in rerun.output


def test_cli_export_needs_one_cohort(catalog_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["export", "nnunet", str(tmp_path), "--catalog", str(catalog_dir)]
    )
    assert result.exit_code == 2
    assert "--cohort" in result.output


def test_challenge_layout(catalog_dir: Path, tmp_path: Path) -> None:
    cat = mamamia.open(catalog_dir)
    result = CliRunner().invoke(
        main,
        ["export", "challenge", str(tmp_path), "--cohort", "dataset = 'NACT'", "--catalog",
         str(catalog_dir)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cohort = cat.cohort("dataset = 'NACT'")
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == cohort.case_ids
    for pid in cohort.case_ids:
        image = cat.case(pid).image
        files = sorted((tmp_path / "images" / pid).iterdir())
        assert [f.name for f in files] == [
            f"{pid.lower()}_{p:04d}.nii.gz" for p in range(image.shape[0])
        ]
        for phase, path in enumerate(files):
            read = SimpleITK.ReadImage(str(path))
            assert np.array_equal(SimpleITK.GetArrayFromImage(read), image[phase])
            assert read.GetDirection() == pytest.approx(image.direction, abs=1e-6)
        info_path = tmp_path / "patient_info_files" / f"{pid.lower()}.json"
        body = json.loads(info_path.read_text())
        assert body["patient_id"] == pid
        assert "pcr" not in body["primary_lesion"]
        assert body["clinical_data"]["age"] == cat.case(pid)["age"]
        # Our own reader of the release's per-case JSON accepts it without an error.
        info, problems = mamamia.read_patient_info(info_path)
        assert info is not None
        assert not [p for p in problems if p.severity == "error"], problems


@pytest.mark.parametrize("fmt", ["bibtex", "apa", "json"])
def test_citation_formats_name_every_work(catalog_dir: Path, fmt: str) -> None:
    cat = mamamia.open(catalog_dir)
    text = cat.citation(format=fmt)
    dois = [str(item["doi"]) for item in cat.citation().citations if item.get("doi")]
    assert len(dois) == 6  # the paper, the dataset and four TCIA collections
    for doi in dois:
        assert doi.replace("_", "\\_") in text or doi in text, (fmt, doi)
    if fmt == "json":
        assert json.loads(text)["licence"] == "CC BY-NC 4.0"
    if fmt == "bibtex":
        assert text.count("@") == 6
    cli = CliRunner().invoke(main, ["cite", "--format", fmt, "--catalog", str(catalog_dir)])
    assert cli.exit_code == 0
    assert cli.output == text


def test_citation_rejects_an_unknown_format(catalog_dir: Path) -> None:
    with pytest.raises(mamamia.InvalidRequest, match="format"):
        mamamia.open(catalog_dir).citation(format="ris")
