"""``mamamia.evaluate``'s per-case metrics against the organisers' method, on full-size masks.

The masks are synthetic tumours of realistic size in a 160x448x448 grid (uint8): a lumpy
ellipsoid of 20-40 voxel radii as the reference; the prediction is the same blob shifted by a
few voxels, with its surface perturbed and a small false-positive blob elsewhere. Both methods
score the same in-memory arrays:

- ours: ``dice_hd95`` (each mask's bounding box, its boundary voxels found there, KD-trees over
  the boundary voxels only);
- baseline: the organisers' method, written out here: label masks and DSC over the whole
  volume, ``LabelContour`` over the whole volume, ``argwhere``, a cKDTree per direction.

Both must give the same numbers (checked to 1e-9); the row is cases/s and the ratio.

A second measurement runs end to end on a phantom catalog at ``--scale 1`` (full-size masks):
``evaluate_segmentation`` over a folder of predictions (the automatic masks as NIfTI files),
reference masks read from the catalog, with ``--jobs 1`` and ``--jobs 2``, against the
organisers' loop (``sitk.ReadImage`` of both NIfTI files, then their metrics) on the same files.

    uv run python bench/bench_evaluate.py [--cases 8]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import cKDTree

from mamamia.evaluate import dice_hd95, norm_hd

SHAPE = (160, 448, 448)
BASELINE = "organisers' method (whole-volume LabelContour + cKDTree)"


def blob(
    rng: np.random.Generator, centre: npt.NDArray[np.float64], radii: npt.NDArray[np.float64]
) -> npt.NDArray[np.uint8]:
    """A lumpy ellipsoid: distance-to-centre thresholded with smooth noise on the surface."""
    lo = np.maximum((centre - radii * 1.5).astype(int), 0)
    hi = np.minimum((centre + radii * 1.5).astype(int) + 1, SHAPE)
    zz, yy, xx = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    r = ((zz - centre[0]) / radii[0]) ** 2 + ((yy - centre[1]) / radii[1]) ** 2
    r = r + ((xx - centre[2]) / radii[2]) ** 2
    noise = ndimage.gaussian_filter(rng.standard_normal(r.shape), 3) * 4
    out = np.zeros(SHAPE, np.uint8)
    out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = (r + noise) <= 1.0
    return out


def make_case(seed: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    rng = np.random.default_rng(seed)
    centre = np.array(SHAPE, float) * rng.uniform(0.3, 0.7, 3)
    radii = rng.uniform(20, 40, 3) * np.array([0.5, 1, 1])
    reference = blob(rng, centre, radii)
    prediction = blob(rng, centre + rng.integers(-4, 5, 3), radii * rng.uniform(0.85, 1.15, 3))
    far = np.array(SHAPE, float) * rng.uniform(0.1, 0.9, 3)
    prediction |= blob(rng, far, np.array([3.0, 6.0, 6.0]))
    return reference, prediction


def organisers(
    reference: npt.NDArray[np.uint8], prediction: npt.NDArray[np.uint8]
) -> tuple[float, float]:
    """DSC and NormHD the organisers' way (their metrics module, re-implemented)."""
    ref, pred = reference == 1, prediction == 1
    tp = np.sum(ref & pred)
    fp = np.sum(~ref & pred)
    fn = np.sum(ref & ~pred)
    dsc = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0
    contours = [
        sitk.GetArrayFromImage(sitk.LabelContour(sitk.GetImageFromArray(m.astype(np.uint8))))
        for m in (reference, prediction)
    ]
    a, b = (np.argwhere(c > 0) for c in contours)
    if len(a) == 0 or len(b) == 0:
        hd = 0.0 if len(a) == len(b) == 0 else np.inf
    else:
        fwd = cKDTree(a).query(b, k=1)[0]
        bwd = cKDTree(b).query(a, k=1)[0]
        hd = max(np.percentile(fwd, 95), np.percentile(bwd, 95))
    return float(dsc), (hd / 150 if hd != np.inf else 1.0)


def ours(
    reference: npt.NDArray[np.uint8], prediction: npt.NDArray[np.uint8]
) -> tuple[float, float]:
    dsc, hd = dice_hd95(reference, prediction)
    return dsc, norm_hd(hd)


def run(cases: int = 8, full_cases: int = 4) -> list[dict[str, Any]]:
    return metrics_only(cases) + end_to_end(full_cases)


def metrics_only(cases: int) -> list[dict[str, Any]]:
    pairs = [make_case(seed) for seed in range(cases)]
    timings: dict[str, float] = {}
    results: dict[str, list[tuple[float, float]]] = {}
    for name, method in (("baseline", organisers), ("ours", ours)):
        method(*pairs[0])  # warm-up (imports, first allocations)
        started = time.perf_counter()
        results[name] = [method(*pair) for pair in pairs]
        timings[name] = time.perf_counter() - started
    for (d1, h1), (d2, h2) in zip(results["ours"], results["baseline"], strict=True):
        assert abs(d1 - d2) <= 1e-9 and abs(h1 - h2) <= 1e-9, "the two methods disagree"
    ours_rate = cases / timings["ours"]
    base_rate = cases / timings["baseline"]
    voxels = int(np.mean([int(r.sum()) for r, _ in pairs]))
    return [
        {
            "benchmark": "evaluate",
            "metric": f"DSC + HD95 per case, {cases} synthetic cases 160x448x448 "
            f"(~{voxels} tumour voxels), 1 thread, same numbers to 1e-9",
            "ours": ours_rate,
            "baseline": base_rate,
            "baseline_name": BASELINE,
            "ratio": ours_rate / base_rate,
            "target": ">= 5x",
            "unit": "cases/s",
        }
    ]


def end_to_end(cases: int) -> list[dict[str, Any]]:
    """evaluate_segmentation on full-size phantom masks against the organisers' loop."""
    import shutil
    import tempfile
    from pathlib import Path

    from mamamia.evaluate import EvaluateOptions, evaluate_segmentation
    from mamamia_ingest import ingest, write_phantom

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_phantom(root / "raw", cases=cases, scale=1.0, seed=0, progress=False)
        ingest(root / "raw", root / "catalog", jobs=2, progress=False)
        pred = root / "pred"
        shutil.copytree(root / "raw" / "segmentations" / "automatic", pred)
        expert = root / "raw" / "segmentations" / "expert"
        started = time.perf_counter()
        theirs = {}
        for path in sorted(pred.glob("*.nii.gz")):
            gt = sitk.GetArrayFromImage(sitk.ReadImage(str(expert / path.name)))
            guess = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
            theirs[path.name.split(".")[0]] = organisers(gt, guess)
        base_rate = len(theirs) / (time.perf_counter() - started)
        shape = sitk.ReadImage(str(sorted(expert.glob("*.nii.gz"))[0])).GetSize()[::-1]
        for jobs in (1, 2):
            started = time.perf_counter()
            result = evaluate_segmentation(root / "catalog", pred, EvaluateOptions(jobs=jobs))
            rate = result.n_cases / (time.perf_counter() - started)
            for case in result.cases:
                dsc, nhd = theirs[case.patient_id]
                assert abs(case.dsc - dsc) <= 1e-9 and abs(case.norm_hd - nhd) <= 1e-9
            rows.append(
                {
                    "benchmark": "evaluate",
                    "metric": f"mamamia evaluate end to end, --jobs {jobs}, {result.n_cases} "
                    f"phantom cases at --scale 1 (first {tuple(shape)}), reading included",
                    "ours": rate,
                    "baseline": base_rate,
                    "baseline_name": "organisers' loop (ReadImage of both files + their metrics)",
                    "ratio": rate / base_rate,
                    "target": None,
                    "unit": "cases/s",
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=8)
    args = parser.parse_args()
    from _table import markdown_table

    rows = run(args.cases)
    print(markdown_table(rows))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
