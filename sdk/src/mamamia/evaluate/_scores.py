"""The challenge's summary scores over per-case results: performance, fairness and ranking.

Task 1 (segmentation): performance = 0.5 (mean DSC + 1 - mean NormHD); per variable, fairness =
1 - 0.5 (ΔDSC + ΔNormHD) with Δ the max - min of the group means; fairness score = their mean;
ranking = 0.5 performance + 0.5 fairness score. Task 2 (pCR): performance = balanced accuracy;
per variable, equalized-odds disparity = ΔTPR + ΔFPR over the groups; fairness score = 1 -
clip(mean disparity, 0, 1); ranking = 0.5 balanced accuracy + 0.5 fairness score.

Only groups that hold cases take part (an empty age bin is not a group).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ._groups import FAIRNESS_VARIABLES, group_order

__all__ = [
    "CasePcr",
    "CaseSegmentation",
    "GroupStats",
    "PcrSummary",
    "SegmentationSummary",
    "auc",
    "balanced_accuracy",
    "rates",
    "summarize_pcr",
    "summarize_segmentation",
]


@dataclass(frozen=True)
class CaseSegmentation:
    """One case's segmentation scores and groups (``hd95`` is ``math.inf`` for one empty mask)."""

    patient_id: str
    dsc: float
    hd95: float
    norm_hd: float
    reference_voxels: int
    predicted_voxels: int
    prediction_missing: bool
    groups: dict[str, str | None]


@dataclass(frozen=True)
class CasePcr:
    """One case's pCR truth (missing counted as 0), hard prediction and score, and groups."""

    patient_id: str
    pcr: int
    pcr_missing: bool
    pcr_pred: int
    score: float
    prediction_missing: bool
    groups: dict[str, str | None]


GroupStats = dict[str, dict[str, dict[str, Any]]]
_Case = TypeVar("_Case", CaseSegmentation, CasePcr)


def _by_group(cases: Sequence[_Case], variable: str) -> dict[str, list[_Case]]:
    found: dict[str, list[_Case]] = defaultdict(list)
    for case in cases:
        value = case.groups.get(variable)
        if value is not None:
            found[value].append(case)
    return {g: found[g] for g in group_order(variable, set(found))}


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items)


def _spread(values: Iterable[float]) -> float:
    items = list(values)
    return max(items) - min(items)


@dataclass(frozen=True)
class SegmentationSummary:
    mean_dsc: float
    mean_norm_hd: float
    performance: float
    fairness: dict[str, float | None]
    fairness_score: float | None
    ranking_score: float | None
    groups: GroupStats
    warnings: list[str]


def _fairness(
    cases: Sequence[_Case], per_variable: Callable[[dict[str, list[_Case]]], float]
) -> tuple[dict[str, float | None], list[str]]:
    fairness: dict[str, float | None] = {}
    warnings: list[str] = []
    for variable in FAIRNESS_VARIABLES:
        groups = _by_group(cases, variable)
        if groups:
            fairness[variable] = per_variable(groups)
        else:
            fairness[variable] = None
            warnings.append(
                f"{variable}: no scored case has a value; the fairness score averages the "
                "other variables"
            )
    return fairness, warnings


def _defined_mean(fairness: dict[str, float | None]) -> float | None:
    values = [v for v in fairness.values() if v is not None]
    return _mean(values) if values else None


def summarize_segmentation(cases: Sequence[CaseSegmentation]) -> SegmentationSummary:
    """Task 1's summary scores over ``cases`` (at least one)."""
    mean_dsc = _mean(c.dsc for c in cases)
    mean_norm_hd = _mean(c.norm_hd for c in cases)
    performance = 0.5 * (mean_dsc + (1.0 - mean_norm_hd))

    def per_variable(groups: dict[str, list[CaseSegmentation]]) -> float:
        dsc = [_mean(c.dsc for c in members) for members in groups.values()]
        hd = [_mean(c.norm_hd for c in members) for members in groups.values()]
        return 1.0 - 0.5 * (_spread(dsc) + _spread(hd))

    fairness, warnings = _fairness(cases, per_variable)
    fairness_score = _defined_mean(fairness)
    stats: GroupStats = {
        variable: {
            group: {
                "n": len(members),
                "dsc": _mean(c.dsc for c in members),
                "norm_hd": _mean(c.norm_hd for c in members),
            }
            for group, members in _by_group(cases, variable).items()
        }
        for variable in FAIRNESS_VARIABLES
    }
    return SegmentationSummary(
        mean_dsc=mean_dsc,
        mean_norm_hd=mean_norm_hd,
        performance=performance,
        fairness=fairness,
        fairness_score=fairness_score,
        ranking_score=None if fairness_score is None else 0.5 * performance + 0.5 * fairness_score,
        groups=stats,
        warnings=warnings,
    )


def balanced_accuracy(truth: Sequence[int], predicted: Sequence[int]) -> float:
    """Mean recall over the classes present in ``truth`` (scikit-learn's definition)."""
    recalls = []
    for label in sorted(set(truth)):
        hits = [p == label for t, p in zip(truth, predicted, strict=True) if t == label]
        recalls.append(sum(hits) / len(hits))
    return _mean(recalls)


def rates(truth: Sequence[int], predicted: Sequence[int]) -> tuple[float, float]:
    """(TPR, FPR) as the scoring script computes them: (0, 0) when the group's true and
    predicted labels together hold one class only; a rate with an empty denominator is 0."""
    if len(set(truth) | set(predicted)) < 2:
        return 0.0, 0.0
    pairs = list(zip(truth, predicted, strict=True))
    tp = sum(1 for t, p in pairs if t == 1 and p == 1)
    fn = sum(1 for t, p in pairs if t == 1 and p == 0)
    fp = sum(1 for t, p in pairs if t == 0 and p == 1)
    tn = sum(1 for t, p in pairs if t == 0 and p == 0)
    return (tp / (tp + fn) if tp + fn else 0.0), (fp / (fp + tn) if fp + tn else 0.0)


def auc(truth: Sequence[int], score: Sequence[float]) -> float | None:
    """ROC AUC (ties count half), or None when ``truth`` holds one class only."""
    positives = [s for t, s in zip(truth, score, strict=True) if t == 1]
    negatives = [s for t, s in zip(truth, score, strict=True) if t == 0]
    if not positives or not negatives:
        return None
    ordered = sorted(negatives)
    from bisect import bisect_left, bisect_right

    wins = 0.0
    for s in positives:
        below = bisect_left(ordered, s)
        wins += below + 0.5 * (bisect_right(ordered, s) - below)
    return wins / (len(positives) * len(negatives))


@dataclass(frozen=True)
class PcrSummary:
    balanced_accuracy: float
    auc: float | None
    disparity: dict[str, float | None]
    fairness: dict[str, float | None]
    fairness_score: float | None
    ranking_score: float | None
    groups: GroupStats
    warnings: list[str]


def summarize_pcr(cases: Sequence[CasePcr]) -> PcrSummary:
    """Task 2's summary scores over ``cases`` (at least one)."""
    bacc = balanced_accuracy([c.pcr for c in cases], [c.pcr_pred for c in cases])

    def per_variable(groups: dict[str, list[CasePcr]]) -> float:
        pairs = [
            rates([c.pcr for c in members], [c.pcr_pred for c in members])
            for members in groups.values()
        ]
        return _spread(p[0] for p in pairs) + _spread(p[1] for p in pairs)

    disparity, warnings = _fairness(cases, per_variable)
    mean_disparity = _defined_mean(disparity)
    fairness_score = None if mean_disparity is None else 1.0 - min(max(mean_disparity, 0.0), 1.0)
    stats: GroupStats = {}
    for variable in FAIRNESS_VARIABLES:
        stats[variable] = {}
        for group, members in _by_group(cases, variable).items():
            truth = [c.pcr for c in members]
            tpr, fpr = rates(truth, [c.pcr_pred for c in members])
            stats[variable][group] = {
                "n": len(members),
                "n_pcr": sum(truth),
                "tpr": tpr,
                "fpr": fpr,
                "auc": auc(truth, [c.score for c in members]),
            }
    return PcrSummary(
        balanced_accuracy=bacc,
        auc=auc([c.pcr for c in cases], [c.score for c in cases]),
        disparity=disparity,
        fairness={k: None if v is None else 1.0 - v for k, v in disparity.items()},
        fairness_score=fairness_score,
        ranking_score=None if fairness_score is None else 0.5 * bacc + 0.5 * fairness_score,
        groups=stats,
        warnings=warnings,
    )
