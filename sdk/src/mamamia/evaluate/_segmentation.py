"""Task 1: score a folder of predicted masks (or the release's automatic masks) against the
catalog's reference masks, in parallel over cases.

Every prediction is checked before it is scored: 3-D, the reference's shape, spacing, origin and
direction (to 1e-4), labels 0 and 1 only. All the problems found are raised together, one line
per case and file; nothing bad is scored silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

import mamamia

from ._evaluation_error import EvaluationError
from ._groups import CaseInfo, age_group, case_infos, menopause_group, open_catalog
from ._metrics import dice_hd95, norm_hd
from ._results import SegmentationResult
from ._scores import CaseSegmentation, summarize_segmentation

__all__ = ["EvaluateOptions", "evaluate_segmentation", "find_predictions"]

#: Geometry tolerance (mm for spacing and origin, unitless for direction cosines).
GEOMETRY_TOLERANCE = 1e-4
_SUFFIXES = (".nii.gz", ".nii")
_MAX_LISTED = 20


@dataclass(frozen=True)
class EvaluateOptions:
    """How to evaluate: the cohort (a WHERE over ``cases``), the reference masks, the workers.

    ``cohort`` None means every case that has the reference mask. ``reference`` is ignored by
    the pCR task. ``with_baseline`` also scores the release's automatic masks against the same
    reference and cohort, for the report's comparison row.
    """

    cohort: str | None = None
    reference: Literal["expert", "automatic"] = "expert"
    jobs: int = 1
    with_baseline: bool = False
    progress: bool = False

    def __post_init__(self) -> None:
        if self.reference not in ("expert", "automatic"):
            raise EvaluationError(f"reference {self.reference!r}: must be expert or automatic")
        if self.jobs < 1:
            raise EvaluationError(f"jobs {self.jobs}: must be at least 1")


def find_predictions(
    folder: Path, ids_by_lower: dict[str, str], suffixes: tuple[str, ...] = _SUFFIXES
) -> tuple[dict[str, Path], list[str]]:
    """Prediction files by catalog patient id (names case-insensitive), and the unknown names."""
    if not folder.is_dir():
        raise EvaluationError(f"predictions folder {folder}: not a directory")
    found: dict[str, Path] = {}
    unknown: list[str] = []
    clashes: list[str] = []
    for path in sorted(folder.iterdir()):
        lower = path.name.lower()
        suffix = next((s for s in suffixes if lower.endswith(s)), None)
        if suffix is None or not path.is_file():
            continue
        patient_id = ids_by_lower.get(lower[: -len(suffix)])
        if patient_id is None:
            unknown.append(path.name)
        elif patient_id in found:
            clashes.append(f"{patient_id}: both {found[patient_id].name} and {path.name}")
        else:
            found[patient_id] = path
    if clashes:
        raise EvaluationError("more than one prediction for a case:\n  " + "\n  ".join(clashes))
    return found, unknown


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return len(a) == len(b) and all(
        abs(x - y) <= GEOMETRY_TOLERANCE for x, y in zip(a, b, strict=True)
    )


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def _read_prediction(path: Path, reference: mamamia.Volume) -> npt.NDArray[np.bool_]:
    """The prediction's label-1 mask, after the checks; ValueError says what is wrong.

    The header is read and checked first, so a file claiming another size is refused before
    any voxel is allocated.
    """
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ValueError(f"unreadable ({str(exc).strip().splitlines()[-1]})") from exc
    if reader.GetDimension() != 3 or reader.GetNumberOfComponents() != 1:
        raise ValueError(
            f"expected a 3-D single-component mask, got {reader.GetDimension()}-D with "
            f"{reader.GetNumberOfComponents()} component(s)"
        )
    shape = tuple(reversed(reader.GetSize()))
    geometry = reference.geometry
    if shape != tuple(reference.shape):
        raise ValueError(
            f"shape (z, y, x) {shape} differs from the reference's {tuple(reference.shape)}"
        )
    for name, ours, theirs in (
        ("spacing", reader.GetSpacing(), geometry.spacing_xyz),
        ("origin", reader.GetOrigin(), geometry.origin_xyz),
        ("direction", reader.GetDirection(), geometry.direction),
    ):
        if not _close(tuple(ours), tuple(theirs)):
            raise ValueError(
                f"{name} {_fmt(tuple(ours))} differs from the reference's {_fmt(tuple(theirs))}"
            )
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise ValueError(f"unreadable ({str(exc).strip().splitlines()[-1]})") from exc
    array = sitk.GetArrayFromImage(image)
    outside = (array != 0) & (array != 1)
    if outside.any():
        values = np.unique(array[outside])
        listed = ", ".join(f"{v:g}" for v in values[:10].tolist())
        more = f" and {len(values) - 10} more" if len(values) > 10 else ""
        raise ValueError(f"labels must be 0 and 1; found {listed}{more}")
    mask: npt.NDArray[np.bool_] = array == 1
    return mask


def _score(
    info: CaseInfo, reference: npt.NDArray[np.bool_], prediction: npt.NDArray[np.bool_] | None
) -> CaseSegmentation:
    missing = prediction is None
    predicted = np.zeros_like(reference) if prediction is None else prediction
    dsc, distance = dice_hd95(reference, predicted)
    return CaseSegmentation(
        patient_id=info.patient_id,
        dsc=dsc,
        hd95=distance,
        norm_hd=norm_hd(distance),
        reference_voxels=int(np.count_nonzero(reference)),
        predicted_voxels=int(np.count_nonzero(predicted)),
        prediction_missing=missing,
        groups={
            "age": age_group(info.age),
            "menopausal_status": menopause_group(info.menopause),
            "breast_density": info.breast_density,
        },
    )


class _BadPrediction(Exception):
    """One case's prediction cannot be scored; collected, then raised together."""


def _run(
    infos: list[CaseInfo],
    task: Callable[[CaseInfo], CaseSegmentation],
    options: EvaluateOptions,
) -> list[CaseSegmentation]:
    """``task`` over ``infos`` on ``options.jobs`` threads (the heavy parts release the GIL)."""
    from tqdm import tqdm

    problems: list[str] = []
    scored: list[CaseSegmentation] = []
    with (
        tqdm(
            total=len(infos), desc="scoring", unit="case", leave=False, disable=not options.progress
        ) as bar,
        ThreadPoolExecutor(max_workers=options.jobs) as pool,
    ):
        for info, future in [(i, pool.submit(task, i)) for i in infos]:
            try:
                scored.append(future.result())
            except _BadPrediction as exc:
                problems.append(f"{info.patient_id}: {exc}")
            bar.update()
    if problems:
        extra = len(problems) - _MAX_LISTED
        listed = problems[:_MAX_LISTED] + ([f"... and {extra} more"] if extra > 0 else [])
        raise EvaluationError(
            f"{len(problems)} prediction(s) cannot be scored:\n  " + "\n  ".join(listed)
        )
    return scored


def evaluate_segmentation(
    catalog: mamamia.Catalog | str | os.PathLike[str] | None,
    predictions: str | os.PathLike[str] | None,
    options: EvaluateOptions | None = None,
) -> SegmentationResult:
    """Score ``predictions`` (a folder of ``{patient_id}.nii.gz``) as the challenge's task 1.

    ``predictions`` None scores the release's own automatic masks against the expert ones (the
    baseline). Cases of the cohort without a prediction count as empty predictions and are
    listed in ``missing_predictions``; files naming no catalog case, or a case outside the
    cohort, are listed in ``unknown_predictions`` and not scored.
    """
    options = options or EvaluateOptions()
    if predictions is None and options.reference != "expert":
        raise EvaluationError("the automatic baseline is scored against --reference expert only")
    with open_catalog(catalog) as cat:
        return _evaluate(cat, predictions, options)


def _evaluate(
    cat: mamamia.Catalog, predictions: str | os.PathLike[str] | None, options: EvaluateOptions
) -> SegmentationResult:
    infos, ids_by_lower = case_infos(cat, options.cohort, options.reference)
    with_reference = [i for i in infos if getattr(i, f"has_{options.reference}")]
    no_reference = [i.patient_id for i in infos if not getattr(i, f"has_{options.reference}")]
    if not with_reference:
        raise EvaluationError(
            f"no case of the cohort has a {options.reference} mask to score against"
        )
    if predictions is None:
        label = "automatic"
        files: dict[str, Path] = {}
        unknown: list[str] = []
        missing = [i.patient_id for i in with_reference if not i.has_automatic]
    else:
        folder = Path(predictions)
        label = folder.name
        files, unknown = find_predictions(folder, ids_by_lower)
        cohort_ids = {i.patient_id for i in with_reference}
        unknown += sorted(files[p].name for p in files if p not in cohort_ids)
        missing = [i.patient_id for i in with_reference if i.patient_id not in files]

    def task(info: CaseInfo) -> CaseSegmentation:
        case = cat.case(info.patient_id)
        ref_volume = case.mask(options.reference)
        reference = ref_volume.to_numpy() == 1
        prediction: npt.NDArray[np.bool_] | None = None
        if predictions is None:
            if info.has_automatic:
                prediction = case.mask("automatic").to_numpy() == 1
        elif info.patient_id in files:
            path = files[info.patient_id]
            try:
                prediction = _read_prediction(path, ref_volume)
            except ValueError as exc:
                raise _BadPrediction(f"{path.name}: {exc}") from exc
        return _score(info, reference, prediction)

    scored = _run(with_reference, task, options)
    summary = summarize_segmentation(scored)
    warnings = list(summary.warnings)
    if missing:
        warnings.append(f"{len(missing)} case(s) have no prediction and count as empty")
    if unknown:
        warnings.append(f"{len(unknown)} file(s) name no case of the cohort and are not scored")
    if no_reference:
        warnings.append(
            f"{len(no_reference)} case(s) of the cohort have no {options.reference} mask"
        )
    baseline = None
    if options.with_baseline and predictions is not None and options.reference == "expert":
        baseline = _evaluate(cat, None, EvaluateOptions(cohort=options.cohort, jobs=options.jobs))
    return SegmentationResult(
        catalog_version=cat.version,
        predictions=label,
        missing_predictions=tuple(missing),
        unknown_predictions=tuple(unknown),
        warnings=tuple(warnings),
        reference=options.reference,
        segmentation_cases=tuple(scored),
        summary=summary,
        no_reference=tuple(no_reference),
        baseline=baseline,
    )
