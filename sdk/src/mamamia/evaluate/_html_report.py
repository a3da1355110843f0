"""The HTML reports: one self-contained page (inline CSS, no script, no CDN).

Segmentation: the summary (with the release's automatic baseline when scored), bars of the
group means, heat maps of mean DSC by age x breast density and age x menopausal status (what
the organisers plot), and the worst cases linked to the web page's case viewer.
"""

from __future__ import annotations

import math
from collections import defaultdict
from html import escape
from typing import TYPE_CHECKING, Any

from ._groups import AGE_GROUPS, FAIRNESS_VARIABLES, group_order

if TYPE_CHECKING:
    from ._results import PcrResult, SegmentationResult

__all__ = ["pcr_html", "segmentation_html"]

_WORST = 10
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2430;max-width:1100px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.meta{color:#5b6573;font-size:12px}
table{border-collapse:collapse;margin:4px 0}td,th{padding:3px 8px;text-align:right;
border-bottom:1px solid #e3e6ea}th{background:#f3f5f7}td:first-child,th:first-child{text-align:left}
.bars{display:flex;gap:24px;flex-wrap:wrap}.bar{height:12px;background:#3b73b9;display:inline-block}
.bar.hd{background:#c0504d}.warn{color:#8a5a00}.cells td{text-align:center;min-width:56px}
"""


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.{digits}f}"
    return escape(str(value))


def _page(title: str, body: list[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{cls}'><tr>{head}</tr>{body}</table>"


def _bar(value: float | None, cls: str = "") -> str:
    if value is None or math.isnan(value):
        return ""
    width = max(0.0, min(value, 1.0)) * 160
    return f"<span class='bar {cls}' style='width:{width:.0f}px'></span> {_num(value, 3)}"


def _colour(value: float) -> str:
    # Red (low DSC) to blue (high), as the organisers' reversed coolwarm map.
    v = max(0.0, min(value, 1.0))
    red, blue = int(200 - 140 * v), int(80 + 150 * v)
    return f"rgb({red},{int(90 + 60 * v)},{blue})"


def _heat_map(result: SegmentationResult, column: str) -> str:
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for case in result.cases:
        age, other = case.groups.get("age"), case.groups.get(column)
        if age is not None and other is not None:
            cells[(age, other)].append(case.dsc)
    columns = group_order(column, {k[1] for k in cells})
    rows = []
    for age in [a for a in AGE_GROUPS if any(k[0] == a for k in cells)]:
        row = [escape(age)]
        for other in columns:
            values = cells.get((age, other))
            if values:
                mean = sum(values) / len(values)
                row.append(
                    f"<span style='background:{_colour(mean)};color:#fff;padding:2px 6px'>"
                    f"{mean:.3f}</span> <small>n={len(values)}</small>"
                )
            else:
                row.append("")
        rows.append(row)
    if not rows:
        return f"<p class='meta'>no case has both an age group and a {escape(column)}</p>"
    return _table(["age \\ " + column, *columns], rows, "cells")


def _link(patient_id: str, web_url: str | None) -> str:
    if web_url is None:
        return escape(patient_id)
    href = f"{web_url.rstrip('/')}/#case={patient_id}"
    return f"<a href='{escape(href, quote=True)}'>{escape(patient_id)}</a>"


def _lists(result: SegmentationResult | PcrResult) -> list[str]:
    out = [f"<p class='warn'>{escape(w)}</p>" for w in result.warnings]
    for name, ids in (
        ("missing predictions", result.missing_predictions),
        ("unknown predictions (not scored)", result.unknown_predictions),
    ):
        if ids:
            out.append(f"<p><b>{name}</b>: {escape(', '.join(ids))}</p>")
    return out


def segmentation_html(result: SegmentationResult, *, web_url: str | None) -> str:
    """The task-1 report page."""
    headline = ["predictions", "cases", "mean DSC", "mean NormHD", "performance", "fairness"]
    headline.append("ranking")
    rows = []
    for item in [result] + ([result.baseline] if result.baseline is not None else []):
        h = item.headline()
        name = (
            "release baseline (automatic)" if item.predictions == "automatic" else h["predictions"]
        )
        rows.append(
            [escape(str(name))]
            + [_num(h[k]) for k in ("n_cases", "mean_dsc", "mean_norm_hd", "performance")]
            + [_num(h["fairness_score"]), _num(h["ranking_score"])]
        )
    s = result.summary
    body = [
        "<h1>MAMA-MIA task 1: tumour segmentation</h1>",
        f"<p class='meta'>catalog {escape(result.catalog_version)} · reference "
        f"{escape(result.reference)} masks · distances in voxels, NormHD = HD95 / 150</p>",
        _table(headline, rows),
        "<h2>Fairness</h2>",
        _table(
            ["variable", "fairness = 1 − ½(ΔDSC + ΔNormHD)"],
            [[escape(v), _num(s.fairness.get(v))] for v in FAIRNESS_VARIABLES],
        ),
        "<h2>Group means</h2><div class='bars'>",
    ]
    for variable in FAIRNESS_VARIABLES:
        groups = s.groups.get(variable, {})
        body.append(
            f"<div><b>{escape(variable)}</b>"
            + _table(
                ["group", "n", "mean DSC", "mean NormHD"],
                [
                    [escape(g), str(v["n"]), _bar(v["dsc"]), _bar(v["norm_hd"], "hd")]
                    for g, v in groups.items()
                ],
            )
            + "</div>"
        )
    body.append("</div><h2>Mean DSC by age and breast density</h2>")
    body.append(_heat_map(result, "breast_density"))
    body.append("<h2>Mean DSC by age and menopausal status</h2>")
    body.append(_heat_map(result, "menopausal_status"))
    worst = sorted(result.cases, key=lambda c: (c.dsc, -c.norm_hd, c.patient_id))[:_WORST]
    body.append(f"<h2>The {len(worst)} worst cases (lowest DSC)</h2>")
    body.append(
        _table(
            ["case", "DSC", "HD95", "NormHD", "reference voxels", "predicted voxels", "note"],
            [
                [
                    _link(c.patient_id, web_url),
                    _num(c.dsc),
                    _num(c.hd95, 2),
                    _num(c.norm_hd),
                    str(c.reference_voxels),
                    str(c.predicted_voxels),
                    "no prediction" if c.prediction_missing else "",
                ]
                for c in worst
            ],
        )
    )
    body += _lists(result)
    return _page("MAMA-MIA segmentation evaluation", body)


def pcr_html(result: PcrResult, *, web_url: str | None) -> str:
    """The task-2 report page."""
    s = result.summary
    body = [
        "<h1>MAMA-MIA task 2: pCR prediction</h1>",
        f"<p class='meta'>catalog {escape(result.catalog_version)} · "
        f"{result.n_cases} cases · predictions {escape(result.predictions)}</p>",
        _table(
            ["balanced accuracy", "AUC", "fairness score", "ranking"],
            [
                [
                    _num(s.balanced_accuracy),
                    _num(s.auc),
                    _num(s.fairness_score),
                    _num(s.ranking_score),
                ]
            ],
        ),
        "<h2>Equalized odds</h2>",
        _table(
            ["variable", "disparity ΔTPR + ΔFPR", "1 − disparity"],
            [
                [escape(v), _num(s.disparity.get(v)), _num(s.fairness.get(v))]
                for v in FAIRNESS_VARIABLES
            ],
        ),
        "<h2>Groups</h2><div class='bars'>",
    ]
    for variable in FAIRNESS_VARIABLES:
        body.append(
            f"<div><b>{escape(variable)}</b>"
            + _table(
                ["group", "n", "pCR", "TPR", "FPR", "AUC"],
                [
                    [
                        escape(g),
                        str(v["n"]),
                        str(v["n_pcr"]),
                        _bar(v["tpr"]),
                        _bar(v["fpr"], "hd"),
                        _num(v["auc"], 3),
                    ]
                    for g, v in s.groups.get(variable, {}).items()
                ],
            )
            + "</div>"
        )
    body.append("</div>")
    wrong = [c for c in result.cases if c.pcr != c.pcr_pred][:_WORST]
    if wrong:
        body.append("<h2>Misclassified cases (first ten)</h2>")
        body.append(
            _table(
                ["case", "pCR", "predicted", "score"],
                [
                    [_link(c.patient_id, web_url), str(c.pcr), str(c.pcr_pred), _num(c.score, 3)]
                    for c in wrong
                ],
            )
        )
    body += _lists(result)
    return _page("MAMA-MIA pCR evaluation", body)
