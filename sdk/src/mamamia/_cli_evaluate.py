"""``mamamia evaluate segmentation|pcr``: the challenge's scores from the command line.

The scoring needs the ``evaluate`` extra; without it the command says what to install.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from mamamia.evaluate import PcrResult, SegmentationResult

__all__ = ["evaluate_group"]


def _common(function: Any) -> Any:
    options = [
        click.option("--catalog", help="Catalog folder or server URL (default $MAMAMIA_CATALOG)."),
        click.option("--cohort", help="Score only the cases matching this WHERE over `cases`."),
        click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True),
        click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write JSON."),
        click.option("--csv", "csv_out", type=click.Path(dir_okay=False), help="Per-case CSV."),
        click.option("--html", "html_out", type=click.Path(dir_okay=False), help="HTML report."),
        click.option(
            "--web-url",
            help="Where the report's case links point (default: --catalog "
            "when it is a URL, else http://127.0.0.1:8000).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _evaluate_module() -> Any:
    try:
        import mamamia.evaluate as evaluate
    except ImportError as exc:  # the package's own message names the extra to install
        raise click.ClickException(str(exc)) from exc
    return evaluate


def _finish(
    result: SegmentationResult | PcrResult,
    catalog: str | None,
    outputs: tuple[str | None, str | None, str | None],
    web_url: str | None,
) -> None:
    json_out, csv_out, html_out = outputs
    if json_out:
        result.write_json(json_out)
    if csv_out:
        result.write_csv(csv_out)
    if html_out:
        location = catalog or os.environ.get("MAMAMIA_CATALOG") or ""
        default = location if location.startswith(("http://", "https://")) else None
        result.write_html(html_out, web_url=web_url or default or "http://127.0.0.1:8000")
    summary = {k: v for k, v in result.to_dict().items() if k not in ("cases", "groups")}
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(json.dumps(summary, indent=2))


def _run(call: Any) -> Any:
    evaluate = _evaluate_module()
    try:
        return call(evaluate)
    except evaluate.EvaluationError as exc:
        raise click.ClickException(str(exc)) from exc
    except evaluate.MamamiaError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


@click.group(name="evaluate")
def evaluate_group() -> None:
    """Score predictions as the MAMA-MIA challenge does (segmentation, pCR)."""


@evaluate_group.command(name="segmentation")
@click.argument("pred", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--reference", type=click.Choice(["expert", "automatic"]), default="expert", show_default=True
)
@click.option(
    "--baseline",
    type=click.Choice(["automatic"]),
    help="Score the release's automatic masks against the expert ones (no PRED).",
)
@click.option("--with-baseline", is_flag=True, help="Also score the baseline, for comparison.")
@_common
def segmentation_command(
    pred: Path | None,
    reference: str,
    baseline: str | None,
    with_baseline: bool,
    catalog: str | None,
    cohort: str | None,
    jobs: int,
    json_out: str | None,
    csv_out: str | None,
    html_out: str | None,
    web_url: str | None,
) -> None:
    """Task 1: score PRED, a folder of {patient_id}.nii.gz masks, against the reference masks."""
    if (pred is None) == (baseline is None):
        raise click.UsageError("give PRED (a folder of masks) or --baseline automatic, not both")

    def call(evaluate: Any) -> SegmentationResult:
        options = evaluate.EvaluateOptions(
            cohort=cohort,
            reference=reference,
            jobs=jobs,
            with_baseline=with_baseline,
            progress=True,
        )
        result: SegmentationResult = evaluate.evaluate_segmentation(catalog, pred, options)
        return result

    _finish(_run(call), catalog, (json_out, csv_out, html_out), web_url)


@evaluate_group.command(name="pcr")
@click.argument("predictions", type=click.Path(dir_okay=False, path_type=Path))
@_common
def pcr_command(
    predictions: Path,
    catalog: str | None,
    cohort: str | None,
    jobs: int,
    json_out: str | None,
    csv_out: str | None,
    html_out: str | None,
    web_url: str | None,
) -> None:
    """Task 2: score PREDICTIONS.csv (patient_id, pcr, score) against the catalog's pCR."""

    def call(evaluate: Any) -> PcrResult:
        options = evaluate.EvaluateOptions(cohort=cohort, jobs=jobs)
        result: PcrResult = evaluate.evaluate_pcr(catalog, predictions, options)
        return result

    _finish(_run(call), catalog, (json_out, csv_out, html_out), web_url)
