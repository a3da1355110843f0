"""Evaluate like the MAMA-MIA challenge: task 1 (segmentation) and task 2 (pCR) scores, with
the fairness groups, as the organisers' scoring computes them (docs/evaluate.md).

Needs the ``evaluate`` extra (SimpleITK, scipy, pandas): ``pip install 'mamamia[evaluate]'``.
"""

from __future__ import annotations

from mamamia.evaluate._evaluation_error import EXTRA_HINT, EvaluationError

try:
    import scipy.spatial  # noqa: F401
    import SimpleITK  # noqa: F401
except ImportError as _exc:  # say which extra to install, not just which module is missing
    raise ImportError(f"mamamia.evaluate needs {_exc.name}: {EXTRA_HINT}") from _exc

from mamamia.evaluate._groups import AGE_GROUPS, FAIRNESS_VARIABLES, age_group, menopause_group
from mamamia.evaluate._metrics import HD_MAX, dice, dice_hd95, hd95, norm_hd
from mamamia.evaluate._pcr import evaluate_pcr, read_pcr_predictions
from mamamia.evaluate._results import PcrResult, SegmentationResult
from mamamia.evaluate._scores import (
    CasePcr,
    CaseSegmentation,
    PcrSummary,
    SegmentationSummary,
    balanced_accuracy,
)
from mamamia.evaluate._segmentation import EvaluateOptions, evaluate_segmentation

__all__ = [
    "AGE_GROUPS",
    "EXTRA_HINT",
    "FAIRNESS_VARIABLES",
    "HD_MAX",
    "CasePcr",
    "CaseSegmentation",
    "EvaluateOptions",
    "EvaluationError",
    "PcrResult",
    "PcrSummary",
    "SegmentationResult",
    "SegmentationSummary",
    "age_group",
    "balanced_accuracy",
    "dice",
    "dice_hd95",
    "evaluate_pcr",
    "evaluate_segmentation",
    "hd95",
    "menopause_group",
    "norm_hd",
    "read_pcr_predictions",
]
