"""A release-2 phantom catalog (breast density in the table) for the evaluation tests, built
once per session, and the organisers' formulas written out straight with pandas and cKDTree, so
every figure the evaluation reports can be checked against an independent computation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy.spatial import cKDTree

N_CASES = 12
_BUILT: dict[Path, EvalData] = {}


@dataclass(frozen=True)
class EvalData:
    raw: Path
    catalog: Path

    def expert_file(self, patient_id: str) -> Path:
        return self.raw / "segmentations" / "expert" / f"{patient_id}.nii.gz"

    def clinical(self) -> pd.DataFrame:
        """The raw clinical sheet (not the catalog): the input the official scripts read."""
        df = pd.read_excel(self.raw / "clinical_and_imaging_info.xlsx", sheet_name="dataset_info")
        return df.rename(columns={"menopause": "menopausal_status"})


def eval_data(factory: pytest.TempPathFactory) -> EvalData:
    """The shared phantom and catalog (built on first use; tests must not change them)."""
    key = factory.getbasetemp()
    if key not in _BUILT:
        from mamamia_ingest import ingest, write_phantom

        root = factory.mktemp("evaluate")
        write_phantom(root / "raw", cases=N_CASES, scale=0.15, seed=3, release=2, progress=False)
        ingest(root / "raw", root / "catalog", jobs=2, progress=False)
        _BUILT[key] = EvalData(raw=root / "raw", catalog=root / "catalog")
    return _BUILT[key]


def write_like(array: npt.NDArray[np.generic], like: Path, out: Path) -> None:
    """Write ``array`` as NIfTI with the geometry of the image at ``like``."""
    reference = sitk.ReadImage(str(like))
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(reference.GetSpacing())  # not CopyInformation: the sizes may differ
    image.SetOrigin(reference.GetOrigin())
    image.SetDirection(reference.GetDirection())
    sitk.WriteImage(image, str(out))


def read_mask(path: Path) -> npt.NDArray[np.generic]:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


# --- the organisers' formulas, written out ------------------------------------------------


def official_hd95(reference: npt.NDArray[np.generic], prediction: npt.NDArray[np.generic]) -> float:
    """Whole-volume LabelContour, a cKDTree per direction, the larger 95th percentile."""
    contours = [
        sitk.GetArrayFromImage(sitk.LabelContour(sitk.GetImageFromArray(m.astype(np.uint8))))
        for m in (reference, prediction)
    ]
    a, b = (np.argwhere(c > 0) for c in contours)
    if len(a) == 0:
        return 0.0 if len(b) == 0 else float("inf")
    if len(b) == 0:
        return float("inf")
    forward = cKDTree(a).query(b, k=1)[0]
    backward = cKDTree(b).query(a, k=1)[0]
    return float(max(np.percentile(forward, 95), np.percentile(backward, 95)))


def official_case(
    reference: npt.NDArray[np.generic], prediction: npt.NDArray[np.generic]
) -> tuple[float, float]:
    """(DSC, NormHD) as compute_segmentation_metrics gives them."""
    ref, pred = reference == 1, prediction == 1
    tp = np.sum(ref & pred)
    fp = np.sum(~ref & pred)
    fn = np.sum(ref & ~pred)
    dsc = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0
    hd = official_hd95(reference, prediction)
    return float(dsc), (hd / 150 if hd != np.inf else 1.0)


def official_groups(clinical: pd.DataFrame, *, lowercase: bool) -> pd.DataFrame:
    """patient_id, age, menopausal_status, breast_density mapped to the scripts' groups."""
    df = clinical[["patient_id", "age", "menopausal_status", "breast_density", "pcr"]].copy()
    df["age"] = pd.cut(
        df["age"], bins=[0, 40, 50, 60, 70, 100], labels=["0-40", "41-50", "51-60", "61-70", "71+"]
    )
    status = df["menopausal_status"].fillna("unknown")
    if lowercase:
        status = status.str.lower()
    status = status.apply(lambda x: "pre" if "peri" in x else x)
    status = status.apply(lambda x: "post" if "post" in x else x)
    df["menopausal_status"] = status.apply(lambda x: "pre" if "pre" in x else x)
    return df


VARIABLES = ["age", "menopausal_status", "breast_density"]


def official_task1(scores: pd.DataFrame) -> dict[str, object]:
    """The task-1 summary from per-case DSC / NormHD merged with the groups (the intended
    per-patient assignment; observed groups only)."""
    performance = 0.5 * (scores["DSC"].mean() + (1 - scores["NormHD"].mean()))
    fairness = {}
    for variable in VARIABLES:
        groups = scores.groupby(variable, observed=True)
        dsc = [g["DSC"].mean() for _, g in groups]
        hd = [g["NormHD"].mean() for _, g in groups]
        fairness[variable] = 1 - 0.5 * ((max(dsc) - min(dsc)) + (max(hd) - min(hd)))
    fairness_score = sum(fairness.values()) / len(VARIABLES)
    return {
        "performance": performance,
        "fairness": fairness,
        "fairness_score": fairness_score,
        "ranking_score": 0.5 * performance + 0.5 * fairness_score,
    }


def _confusion_rates(yt: pd.Series, yp: pd.Series) -> tuple[float, float]:
    labels = np.union1d(yt.unique(), yp.unique())
    if len(labels) < 2:  # confusion_matrix(...).ravel() has one cell: the script's ValueError
        return 0.0, 0.0
    tp = int(((yt == 1) & (yp == 1)).sum())
    fn = int(((yt == 1) & (yp == 0)).sum())
    fp = int(((yt == 0) & (yp == 1)).sum())
    tn = int(((yt == 0) & (yp == 0)).sum())
    return (tp / (tp + fn) if tp + fn else 0), (fp / (fp + tn) if fp + tn else 0)


def official_task2(df: pd.DataFrame) -> dict[str, object]:
    """The task-2 summary; ``df`` has pcr (true, NaN allowed), pcr_pred and the groups."""
    y_true = df["pcr"].fillna(0).astype(int)
    y_pred = df["pcr_pred"].fillna(0).astype(int)
    recalls = [((y_pred == c) & (y_true == c)).sum() / (y_true == c).sum() for c in y_true.unique()]
    bacc = float(np.mean(recalls))
    disparity = {}
    for variable in VARIABLES:
        tpr, fpr = [], []
        for _, group in df.assign(pcr=y_true).groupby(variable, observed=True):
            t, f = _confusion_rates(group["pcr"].astype(int), group["pcr_pred"].astype(int))
            tpr.append(t)
            fpr.append(f)
        disparity[variable] = max(tpr) - min(tpr) + max(fpr) - min(fpr)
    fairness = float(np.clip(np.mean(list(disparity.values())), 0, 1))
    return {
        "balanced_accuracy": bacc,
        "disparity": disparity,
        "fairness_score": 1 - fairness,
        "ranking_score": 0.5 * bacc + 0.5 * (1 - fairness),
    }
