"""Task 2: score a CSV of pCR predictions (``patient_id, pcr, score``) against the catalog.

The CSV is untrusted: it is read with a size cap, every row is checked (a known column set, a
0/1 label, a finite number for the score, no id twice) and every problem is raised together.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import mamamia

from ._evaluation_error import EvaluationError
from ._groups import age_group, case_infos, menopause_group, open_catalog
from ._results import PcrResult
from ._scores import CasePcr, summarize_pcr
from ._segmentation import EvaluateOptions

__all__ = ["evaluate_pcr", "read_pcr_predictions"]

REQUIRED_COLUMNS = ("patient_id", "pcr", "score")
_MAX_BYTES = 64 * 2**20
_MAX_LISTED = 20
_LABELS = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}


def read_pcr_predictions(path: str | os.PathLike[str]) -> dict[str, tuple[int, float]]:
    """``patient_id -> (pcr, score)`` from the CSV at ``path``; EvaluationError on bad input."""
    source = Path(path)
    try:
        size = source.stat().st_size
        if size > _MAX_BYTES:
            raise EvaluationError(f"{source.name}: {size} bytes, over the {_MAX_BYTES} limit")
        text = source.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise EvaluationError(f"{source}: cannot be read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise EvaluationError(f"{source.name}: not UTF-8 text ({exc.reason})") from exc
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    lacking = [c for c in REQUIRED_COLUMNS if c not in header]
    if lacking:
        raise EvaluationError(
            f"{source.name}: missing column(s) {', '.join(lacking)} "
            f"(found {', '.join(header) or 'no header'}; need {', '.join(REQUIRED_COLUMNS)})"
        )
    reader.fieldnames = header
    rows: dict[str, tuple[int, float]] = {}
    problems: list[str] = []
    for line, raw in enumerate(reader, start=2):
        patient_id = (raw.get("patient_id") or "").strip()
        where = f"{source.name} line {line} ({patient_id or 'no patient_id'})"
        label = _LABELS.get((raw.get("pcr") or "").strip().lower())
        try:
            score = float((raw.get("score") or "").strip())
        except ValueError:
            score = math.nan
        if not patient_id:
            problems.append(f"{where}: empty patient_id")
        elif label is None:
            problems.append(f"{where}: pcr {raw.get('pcr')!r} is not 0 or 1")
        elif not math.isfinite(score):
            problems.append(f"{where}: score {raw.get('score')!r} is not a finite number")
        elif patient_id.upper() in rows:
            problems.append(f"{where}: appears more than once (ids are matched ignoring case)")
        else:
            rows[patient_id.upper()] = (label, score)
    if problems:
        extra = len(problems) - _MAX_LISTED
        listed = problems[:_MAX_LISTED] + ([f"... and {extra} more"] if extra > 0 else [])
        raise EvaluationError(f"{len(problems)} bad row(s):\n  " + "\n  ".join(listed))
    return rows


def evaluate_pcr(
    catalog: mamamia.Catalog | str | os.PathLike[str] | None,
    predictions: str | os.PathLike[str],
    options: EvaluateOptions | None = None,
) -> PcrResult:
    """Score a predictions CSV as the challenge's task 2 over the cohort (default: every case).

    A true pCR the catalog lacks counts as 0, as the scoring script does (listed in the
    warnings). A cohort case without a prediction counts as pcr 0 with score 0 and is listed in
    ``missing_predictions``; ids outside the cohort are listed in ``unknown_predictions``.
    """
    options = options or EvaluateOptions()
    rows = read_pcr_predictions(predictions)
    with open_catalog(catalog) as cat:
        infos, _ = case_infos(cat, options.cohort, "all")
        version = cat.version
    if not infos:
        raise EvaluationError(f"the cohort {options.cohort!r} holds no case")
    known = {i.patient_id.upper() for i in infos}
    unknown = sorted(p for p in rows if p not in known)
    cases: list[CasePcr] = []
    missing: list[str] = []
    for info in infos:
        row = rows.get(info.patient_id.upper())
        if row is None:
            missing.append(info.patient_id)
        label, score = row if row is not None else (0, 0.0)
        cases.append(
            CasePcr(
                patient_id=info.patient_id,
                pcr=int(bool(info.pcr)),
                pcr_missing=info.pcr is None,
                pcr_pred=label,
                score=score,
                prediction_missing=row is None,
                groups={
                    "age": age_group(info.age),
                    "menopausal_status": menopause_group(info.menopause, lowercase=True),
                    "breast_density": info.breast_density,
                },
            )
        )
    summary = summarize_pcr(cases)
    warnings = list(summary.warnings)
    no_truth = sum(c.pcr_missing for c in cases)
    if no_truth:
        warnings.append(f"{no_truth} case(s) have no true pCR in the catalog and count as 0")
    if missing:
        warnings.append(f"{len(missing)} case(s) have no prediction and count as pcr 0, score 0")
    if unknown:
        warnings.append(f"{len(unknown)} id(s) name no case of the cohort and are not scored")
    return PcrResult(
        catalog_version=version,
        predictions=Path(predictions).name,
        missing_predictions=tuple(missing),
        unknown_predictions=tuple(unknown),
        warnings=tuple(warnings),
        pcr_cases=tuple(cases),
        summary=summary,
    )
