"""``mamamia export nnunet|challenge`` and ``mamamia cite``: the field's formats from the shell."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mamamia._cli_catalog import open_location
from mamamia._cohort import Cohort, load_cohort
from mamamia._errors import MamamiaError

__all__ = ["cite_command", "export_group"]


def _cohort(catalog_location: str | None, where: str | None, cohort_file: Path | None) -> Cohort:
    if (where is None) == (cohort_file is None):
        raise click.UsageError("give exactly one of --cohort WHERE or --cohort-file FILE")
    catalog = open_location(catalog_location)
    if cohort_file is not None:
        return load_cohort(cohort_file, catalog)
    assert where is not None
    return catalog.cohort(where)


def _phases(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"phases must be ints separated by commas, not {text!r}") from None


_cohort_options = [
    click.option("--cohort", "where", help="WHERE expression over the cases table."),
    click.option(
        "--cohort-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A cohort saved with Cohort.save.",
    ),
    click.option("--catalog", "catalog", help="Catalog folder or server URL ($MAMAMIA_CATALOG)."),
    click.option("--jobs", type=int, default=2, show_default=True, help="Files written at once."),
]


_F = TypeVar("_F", bound=Callable[..., Any])


def _with_cohort(command: _F) -> _F:
    for option in reversed(_cohort_options):
        command = option(command)
    return command


@click.group(name="export")
def export_group() -> None:
    """Write a cohort in another tool's layout (nnU-Net v2, the challenge's)."""


@export_group.command(name="nnunet")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--dataset-id", type=int, default=105, show_default=True)
@click.option("--name", default="MAMAMIA", show_default=True)
@click.option("--phases", default="0,1", show_default=True, help="Image channels, in order.")
@click.option("--subtraction", is_flag=True, help="Add phase 1 - phase 0 as the last channel.")
@click.option("--label", type=click.Choice(["expert", "automatic"]), default="expert")
@click.option(
    "--test-split",
    default="test",
    show_default=True,
    help="Cases whose split is this go to imagesTs; '' puts every case in training.",
)
@_with_cohort
def nnunet_command(
    out: Path,
    dataset_id: int,
    name: str,
    phases: str,
    subtraction: bool,
    label: str,
    test_split: str,
    where: str | None,
    cohort_file: Path | None,
    catalog: str | None,
    jobs: int,
) -> None:
    """Write OUT/DatasetXXX_NAME, an nnU-Net v2 raw dataset of the cohort."""
    from mamamia._interop import NnunetOptions

    try:
        options = NnunetOptions(
            dataset_id=dataset_id, name=name, phases=_phases(phases), subtraction=subtraction,
            label=label, test_split=test_split or None, jobs=jobs,
        )  # fmt: skip
        report = _cohort(catalog, where, cohort_file).export_nnunet(out, options)
    except MamamiaError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{report.folder}: {report.written} files written, {report.skipped} already there, "
        f"{report.voxel_bytes / 1e6:.1f} MB of voxels at {report.mb_per_s:.1f} MB/s"
    )


@export_group.command(name="challenge")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@_with_cohort
def challenge_command(
    out: Path, where: str | None, cohort_file: Path | None, catalog: str | None, jobs: int
) -> None:
    """Write OUT/images/<ID>/<id>_000N.nii.gz and OUT/patient_info_files/<id>.json."""
    try:
        report = _cohort(catalog, where, cohort_file).export_challenge(out, jobs=jobs)
    except MamamiaError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{report.folder}: {report.written} files written, {report.skipped} already there")


@click.command(name="cite")
@click.option(
    "--format", "fmt", type=click.Choice(["bibtex", "apa", "json"]), default="bibtex",
    show_default=True,
)  # fmt: skip
@click.option("--catalog", "catalog", help="Catalog folder or server URL ($MAMAMIA_CATALOG).")
def cite_command(fmt: str, catalog: str | None) -> None:
    """Print the paper, the dataset DOI and each source collection to cite."""
    try:
        text = open_location(catalog).citation(format=fmt)
    except MamamiaError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(text, nl=False)
