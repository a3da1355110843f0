"""The result objects: per-case rows, the summary, and their JSON / CSV / pandas forms.

The JSON is a contract other tools read; an infinite HD95 (exactly one mask empty) is written
as ``null`` (its ``norm_hd`` is 1), so the file is strict JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._groups import FAIRNESS_VARIABLES
from ._scores import CasePcr, CaseSegmentation, PcrSummary, SegmentationSummary

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PcrResult", "SegmentationResult", "write_atomic"]


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else value


def _case_row(case: CaseSegmentation | CasePcr) -> dict[str, Any]:
    row = {k: v for k, v in asdict(case).items() if k != "groups"}
    if isinstance(case, CaseSegmentation):
        row["hd95"] = _finite(case.hd95)
    row.update({variable: case.groups.get(variable) for variable in FAIRNESS_VARIABLES})
    return row


def _csv_text(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@dataclass(frozen=True)
class _Common(ABC):
    """What both tasks' results share; each task says what its cases and JSON are."""

    catalog_version: str
    predictions: str
    missing_predictions: tuple[str, ...]
    unknown_predictions: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    @abstractmethod
    def cases(self) -> tuple[CaseSegmentation, ...] | tuple[CasePcr, ...]: ...

    @property
    def n_cases(self) -> int:
        return len(self.cases)

    @abstractmethod
    def to_dict(self) -> dict[str, Any]: ...

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per case (the JSON's ``cases``, with the group of each variable)."""
        return [_case_row(case) for case in self.cases]

    def to_pandas(self) -> pd.DataFrame:
        """One row per case (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def write_json(self, path: str | os.PathLike[str]) -> None:
        write_atomic(path, self.to_json())

    def write_csv(self, path: str | os.PathLike[str]) -> None:
        """The per-case rows as CSV (an infinite HD95 is an empty cell)."""
        write_atomic(path, _csv_text(self.rows()))


@dataclass(frozen=True)
class SegmentationResult(_Common):
    """Task 1's scores: ``cases`` per case, the summary, and what was missing or unknown."""

    reference: str
    segmentation_cases: tuple[CaseSegmentation, ...]
    summary: SegmentationSummary
    no_reference: tuple[str, ...] = ()
    #: The release's automatic masks scored the same way, when asked for (report comparison).
    baseline: SegmentationResult | None = field(default=None)

    @property
    def cases(self) -> tuple[CaseSegmentation, ...]:
        return self.segmentation_cases

    @property
    def performance(self) -> float:
        return self.summary.performance

    @property
    def fairness_score(self) -> float | None:
        return self.summary.fairness_score

    @property
    def ranking_score(self) -> float | None:
        return self.summary.ranking_score

    def headline(self) -> dict[str, Any]:
        s = self.summary
        return {
            "predictions": self.predictions,
            "n_cases": self.n_cases,
            "mean_dsc": s.mean_dsc,
            "mean_norm_hd": s.mean_norm_hd,
            "performance": s.performance,
            "fairness_score": s.fairness_score,
            "ranking_score": s.ranking_score,
        }

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        out: dict[str, Any] = {
            "task": "segmentation",
            "catalog_version": self.catalog_version,
            "reference": self.reference,
            "predictions": self.predictions,
            "n_cases": self.n_cases,
            "cases": self.rows(),
            "mean_dsc": s.mean_dsc,
            "mean_norm_hd": s.mean_norm_hd,
            "performance": s.performance,
            "fairness": s.fairness,
            "fairness_score": s.fairness_score,
            "ranking_score": s.ranking_score,
            "groups": s.groups,
            "missing_predictions": list(self.missing_predictions),
            "unknown_predictions": list(self.unknown_predictions),
            "no_reference": list(self.no_reference),
            "warnings": list(self.warnings),
        }
        if self.baseline is not None:
            out["baseline"] = self.baseline.headline()
        return out

    def write_html(self, path: str | os.PathLike[str], *, web_url: str | None = None) -> None:
        """The self-contained HTML report; worst cases link to ``web_url``/#case=ID."""
        from ._html_report import segmentation_html

        write_atomic(path, segmentation_html(self, web_url=web_url))


@dataclass(frozen=True)
class PcrResult(_Common):
    """Task 2's scores: ``cases`` per case, the summary, and what was missing or unknown."""

    pcr_cases: tuple[CasePcr, ...]
    summary: PcrSummary

    @property
    def cases(self) -> tuple[CasePcr, ...]:
        return self.pcr_cases

    @property
    def performance(self) -> float:
        return self.summary.balanced_accuracy

    @property
    def fairness_score(self) -> float | None:
        return self.summary.fairness_score

    @property
    def ranking_score(self) -> float | None:
        return self.summary.ranking_score

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        return {
            "task": "pcr",
            "catalog_version": self.catalog_version,
            "predictions": self.predictions,
            "n_cases": self.n_cases,
            "cases": self.rows(),
            "balanced_accuracy": s.balanced_accuracy,
            "performance": s.balanced_accuracy,
            "auc": s.auc,
            "disparity": s.disparity,
            "fairness": s.fairness,
            "fairness_score": s.fairness_score,
            "ranking_score": s.ranking_score,
            "groups": s.groups,
            "missing_predictions": list(self.missing_predictions),
            "unknown_predictions": list(self.unknown_predictions),
            "warnings": list(self.warnings),
        }

    def write_html(self, path: str | os.PathLike[str], *, web_url: str | None = None) -> None:
        """The self-contained HTML report of task 2."""
        from ._html_report import pcr_html

        write_atomic(path, pcr_html(self, web_url=web_url))
