"""mamamia.evaluate against the organisers' formulas, written out independently in
tests/evaluate_data.py: crafted predictions on a phantom catalog, random masks for HD95, and
crafted pCR predictions with the edge cases of the groups."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from scipy import ndimage

import mamamia
import mamamia.evaluate as ev
from evaluate_data import (
    EvalData,
    eval_data,
    official_case,
    official_groups,
    official_hd95,
    official_task1,
    official_task2,
    read_mask,
    write_like,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> EvalData:
    return eval_data(tmp_path_factory)


def _shift(mask: npt.NDArray[np.generic], by: int) -> npt.NDArray[np.generic]:
    out = np.zeros_like(mask)
    out[:, :, by:] = mask[:, :, :-by]
    return out


def _one_voxel(mask: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    out = np.zeros_like(mask)
    out[0, 0, 0] = 1  # far from the tumour: a large, finite HD95
    return out


#: The crafted prediction of each case, by position in id order (None: no file at all).
CRAFTS = {
    0: ("perfect", lambda m: m.copy()),
    1: ("shifted", lambda m: _shift(m, 2)),
    2: ("eroded", lambda m: ndimage.binary_erosion(m).astype(m.dtype)),
    3: ("empty", np.zeros_like),
    4: ("missing", None),
    5: ("one-voxel", _one_voxel),
    6: ("dilated", lambda m: ndimage.binary_dilation(m, iterations=2).astype(m.dtype)),
}


@pytest.fixture(scope="module")
def crafted(data: EvalData, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A prediction folder (lowercase names for odd cases) and every prediction as an array."""
    folder = tmp_path_factory.mktemp("pred") / "pred"
    folder.mkdir()
    ids = sorted(p.name.split(".")[0] for p in (data.raw / "segmentations/expert").glob("*.nii.gz"))
    arrays = {}
    for index, patient_id in enumerate(ids):
        reference = read_mask(data.expert_file(patient_id))
        kind, craft = CRAFTS.get(index, ("automatic", None))
        if kind == "missing":
            arrays[patient_id] = np.zeros_like(reference)
            continue
        if craft is None:  # the rest: the release's automatic mask
            auto = data.raw / "segmentations/automatic" / f"{patient_id}.nii.gz"
            prediction = read_mask(auto)
        else:
            prediction = craft(reference)
        name = patient_id.lower() if index % 2 else patient_id
        write_like(
            prediction.astype(np.uint8), data.expert_file(patient_id), folder / f"{name}.nii.gz"
        )
        arrays[patient_id] = prediction
    return folder, arrays


def test_crafted_predictions_match_the_official_formulas(
    data: EvalData, crafted: tuple[Path, dict]
) -> None:
    folder, arrays = crafted
    result = ev.evaluate_segmentation(data.catalog, folder, ev.EvaluateOptions(jobs=2))
    groups = official_groups(data.clinical(), lowercase=False)
    rows = []
    for patient_id, prediction in arrays.items():
        dsc, nhd = official_case(read_mask(data.expert_file(patient_id)), prediction)
        rows.append({"patient_id": patient_id, "DSC": dsc, "NormHD": nhd})
    scores = groups.merge(pd.DataFrame(rows), on="patient_id")
    expected = official_task1(scores)

    assert result.n_cases == len(arrays) == 12
    by_id = {c.patient_id: c for c in result.cases}
    for row in rows:
        case = by_id[row["patient_id"]]
        assert case.dsc == pytest.approx(row["DSC"], abs=1e-9)
        assert case.norm_hd == pytest.approx(row["NormHD"], abs=1e-9)
    assert result.performance == pytest.approx(expected["performance"], abs=1e-9)
    for variable, value in expected["fairness"].items():
        assert result.summary.fairness[variable] == pytest.approx(value, abs=1e-9)
    assert result.fairness_score == pytest.approx(expected["fairness_score"], abs=1e-9)
    assert result.ranking_score == pytest.approx(expected["ranking_score"], abs=1e-9)
    for variable in ("age", "menopausal_status", "breast_density"):
        means = scores.groupby(variable, observed=True)["DSC"].agg(["mean", "size"])
        got = result.summary.groups[variable]
        assert set(got) == {str(g) for g in means.index}
        for group, row in means.iterrows():
            assert got[str(group)]["n"] == row["size"]
            assert got[str(group)]["dsc"] == pytest.approx(row["mean"], abs=1e-9)

    ids = sorted(arrays)
    perfect, empty, missing, one = (by_id[ids[i]] for i in (0, 3, 4, 5))
    assert (perfect.dsc, perfect.hd95, perfect.norm_hd) == (1.0, 0.0, 0.0)
    assert (empty.dsc, math.isinf(empty.hd95), empty.norm_hd) == (0.0, True, 1.0)
    assert missing.prediction_missing and missing.norm_hd == 1.0
    assert result.missing_predictions == (ids[4],)
    assert 0 < one.hd95 < math.inf and one.dsc == 0.0
    assert by_id[ids[1]].hd95 == pytest.approx(2.0)  # a 2-voxel shift along x


def test_json_contract(data: EvalData, crafted: tuple[Path, dict], tmp_path: Path) -> None:
    result = ev.evaluate_segmentation(data.catalog, crafted[0])
    result.write_json(tmp_path / "out.json")
    out = json.loads((tmp_path / "out.json").read_text())  # strict JSON: no Infinity
    assert out["task"] == "segmentation"
    assert out["catalog_version"] == result.catalog_version
    assert out["n_cases"] == len(out["cases"]) == 12
    assert {"patient_id", "dsc", "hd95", "norm_hd"} <= set(out["cases"][0])
    assert set(out["fairness"]) == {"age", "menopausal_status", "breast_density"}
    for key in ("performance", "fairness_score", "ranking_score", "missing_predictions"):
        assert key in out
    assert {"n", "dsc", "norm_hd"} == set(out["groups"]["age"]["0-40"])
    empty = [c for c in out["cases"] if c["norm_hd"] == 1.0]
    assert empty and all(c["hd95"] is None for c in empty)


def test_baseline_is_the_automatic_masks(data: EvalData, tmp_path: Path) -> None:
    result = ev.evaluate_segmentation(data.catalog, None, ev.EvaluateOptions(jobs=2))
    groups = official_groups(data.clinical(), lowercase=False)
    rows = []
    for patient_id in groups["patient_id"]:
        auto = read_mask(data.raw / "segmentations/automatic" / f"{patient_id}.nii.gz")
        dsc, nhd = official_case(read_mask(data.expert_file(patient_id)), auto)
        rows.append({"patient_id": patient_id, "DSC": dsc, "NormHD": nhd})
    expected = official_task1(groups.merge(pd.DataFrame(rows), on="patient_id"))
    assert result.predictions == "automatic" and not result.missing_predictions
    assert result.ranking_score == pytest.approx(expected["ranking_score"], abs=1e-9)
    # The folder of the automatic masks scores the same as the shortcut.
    folder = tmp_path / "auto"
    folder.mkdir()
    for path in (data.raw / "segmentations/automatic").glob("*.nii.gz"):
        (folder / path.name).write_bytes(path.read_bytes())
    again = ev.evaluate_segmentation(data.catalog, folder, ev.EvaluateOptions(with_baseline=True))
    assert again.ranking_score == result.ranking_score
    assert again.baseline is not None
    assert again.baseline.ranking_score == result.ranking_score


def test_cohort_limits_the_cases(data: EvalData, crafted: tuple[Path, dict]) -> None:
    result = ev.evaluate_segmentation(
        data.catalog, crafted[0], ev.EvaluateOptions(cohort="dataset = 'DUKE'")
    )
    assert {c.patient_id for c in result.cases} == {"DUKE_001", "DUKE_002", "DUKE_003"}
    assert len(result.unknown_predictions) == 12 - 3 - 1  # one case has no file at all


@pytest.mark.parametrize("seed", range(4))
def test_hd95_equals_the_ckdtree_method_on_random_masks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        shape = tuple(int(n) for n in rng.integers(2, 24, 3))
        a = (rng.random(shape) < rng.uniform(0, 0.5)).astype(np.uint8)
        b = (ndimage.gaussian_filter(rng.random(shape), 1.5) > rng.uniform(0.45, 0.55)).astype(
            np.uint8
        )
        if rng.random() < 0.1:
            a[:] = 1  # a full volume has no contour
        ours, theirs = ev.hd95(a, b), official_hd95(a, b)
        assert ours == pytest.approx(theirs, abs=1e-9) or ours == theirs == math.inf
        assert ev.hd95(b, a) == ours


def test_metric_edge_rules() -> None:
    empty = np.zeros((4, 5, 6), np.uint8)
    one = empty.copy()
    one[2, 2, 2] = 1
    assert ev.dice(empty, empty) == 0.0 and ev.hd95(empty, empty) == 0.0
    assert math.isinf(ev.hd95(one, empty)) and ev.norm_hd(math.inf) == 1.0
    assert ev.norm_hd(300.0) == 2.0  # not clipped
    with pytest.raises(ValueError, match="shapes differ"):
        ev.dice(one, one[:-1])


@pytest.mark.parametrize(
    "age", [0, 0.5, 39, 40, 40.5, 41, 50, 50.01, 60, 61, 70, 70.5, 71, 99, 100, 100.5, -3]
)
def test_age_bins_are_pd_cut(age: float) -> None:
    expected = pd.cut(
        [age], bins=[0, 40, 50, 60, 70, 100], labels=["0-40", "41-50", "51-60", "61-70", "71+"]
    )[0]
    assert ev.age_group(age) == (None if pd.isna(expected) else expected)


@pytest.mark.parametrize(
    "text", [None, "pre", "post", "peri (irregular)", "pre (<6 mo)", "Post", "PRE", "n/a"]
)
def test_menopause_mapping(text: str | None) -> None:
    df = pd.DataFrame(
        {"patient_id": ["X"], "age": [50], "menopausal_status": [text], "breast_density": ["a"]}
    ).assign(pcr=0)
    for lowercase in (False, True):
        expected = official_groups(df, lowercase=lowercase)["menopausal_status"][0]
        assert ev.menopause_group(text, lowercase=lowercase) == expected


def test_pcr_matches_the_official_formulas(data: EvalData, tmp_path: Path) -> None:
    clinical = official_groups(data.clinical(), lowercase=True)
    rng = np.random.default_rng(5)
    clinical["score"] = rng.random(len(clinical)).round(3)
    clinical["pcr_pred"] = (clinical["score"] > 0.5).astype(int)
    missing = clinical["patient_id"].iloc[-1]
    clinical.loc[clinical.index[-1], "pcr_pred"] = 0  # the scorer counts a missing one as 0
    rows = clinical[clinical["patient_id"] != missing]
    csv = tmp_path / "pred.csv"
    lines = ["patient_id,pcr,score"] + [
        f"{p.lower() if i % 3 == 0 else p},{y},{s}"
        for i, (p, y, s) in enumerate(
            zip(rows["patient_id"], rows["pcr_pred"], rows["score"], strict=True)
        )
    ]
    csv.write_text("\n".join([*lines, "NOBODY_1,1,0.9"]) + "\n")
    result = ev.evaluate_pcr(data.catalog, csv)
    expected = official_task2(clinical)
    assert result.performance == pytest.approx(expected["balanced_accuracy"], abs=1e-9)
    for variable, value in expected["disparity"].items():
        assert result.summary.disparity[variable] == pytest.approx(value, abs=1e-9)
    assert result.fairness_score == pytest.approx(expected["fairness_score"], abs=1e-9)
    assert result.ranking_score == pytest.approx(expected["ranking_score"], abs=1e-9)
    assert result.missing_predictions == (missing,)
    assert result.unknown_predictions == ("NOBODY_1",)
    out = result.to_dict()
    assert out["task"] == "pcr" and out["balanced_accuracy"] == result.performance
    assert {"n", "n_pcr", "tpr", "fpr", "auc"} == set(next(iter(out["groups"]["age"].values())))


def test_group_rates_follow_the_script() -> None:
    from mamamia.evaluate._scores import auc, rates

    assert rates([1, 1], [1, 1]) == (0.0, 0.0)  # one class in truth and prediction
    assert rates([1, 1], [1, 0]) == (0.5, 0.0)  # one true class, both predicted
    assert rates([0, 1, 1, 0], [0, 1, 0, 1]) == (0.5, 0.5)
    assert ev.balanced_accuracy([0, 0, 1], [0, 1, 1]) == pytest.approx(0.75)
    assert auc([0, 1, 0, 1], [0.1, 0.9, 0.5, 0.5]) == pytest.approx(0.875)
    assert auc([1, 1], [0.2, 0.3]) is None


def test_density_comes_from_the_case_json_when_the_table_lacks_it(
    data: EvalData, tmp_path: Path
) -> None:
    """A first-release table (no breast_density column) with the per-case JSON files."""
    import openpyxl

    from mamamia_ingest import ingest

    raw = tmp_path / "raw"
    shutil.copytree(data.raw, raw)
    book = openpyxl.load_workbook(raw / "clinical_and_imaging_info.xlsx")
    sheet = book["dataset_info"]
    header = [cell.value for cell in sheet[1]]
    sheet.delete_cols(header.index("breast_density") + 1)
    book.save(raw / "clinical_and_imaging_info.xlsx")
    ingest(raw, tmp_path / "catalog", jobs=2, progress=False)

    from_json = ev.evaluate_segmentation(tmp_path / "catalog", None)
    from_table = ev.evaluate_segmentation(data.catalog, None)
    assert "breast_density" not in set(
        mamamia.open(tmp_path / "catalog").sql("SELECT * FROM cases LIMIT 0").column_names
    )
    assert from_json.summary.groups["breast_density"] == from_table.summary.groups["breast_density"]
    assert from_json.ranking_score == from_table.ranking_score
