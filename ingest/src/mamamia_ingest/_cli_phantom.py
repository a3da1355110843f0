"""``mamamia phantom`` (registered through ``mamamia_ingest._commands``)."""

from __future__ import annotations

import click

__all__ = ["phantom_command"]


@click.command(name="phantom")
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--cases",
    type=click.IntRange(min=1),
    default=None,
    help="Write the first N rows of the table (default 8 when --ids is not given either).",
)
@click.option(
    "--ids",
    default=None,
    metavar="PATTERN[,PATTERN...]",
    help="Only cases whose patient_id matches these glob patterns (DUKE_00*,ISPY1_1*).",
)
@click.option(
    "--scale",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Voxels per axis: max(1, round(n * F)); spacing is set so the physical extent is kept.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random choice.")
@click.option(
    "--table",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="clinical_and_imaging_info.xlsx (or CSV) giving the cases and their geometry "
    "(default: a built-in synthetic table).",
)
@click.option(
    "--release",
    type=click.Choice(["1", "2"]),
    default=None,
    help="Dataset release to write (default: the table's own; 1 for the built-in table). "
    "Release 2 adds breast_density, patient_info_files/*.json and caps phases at 6.",
)
@click.option(
    "--lowercase-names",
    is_flag=True,
    help="Lowercase image, automatic-mask and JSON file names (folders and expert masks stay "
    "uppercase), as some real copies have them.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: the number of CPU cores).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
def phantom_command(
    out: str,
    cases: int | None,
    ids: str | None,
    scale: float,
    seed: int,
    table: str | None,
    release: str | None,
    lowercase_names: bool,
    jobs: int | None,
    quiet: bool,
) -> None:
    """Write a phantom MAMA-MIA dataset into OUT: the real raw layout, made-up voxels."""
    # Imported here so `mamamia --help` stays fast (numpy and SimpleITK load only when used).
    from mamamia_ingest.phantom import PhantomError, write_phantom

    try:
        report = write_phantom(
            out,
            cases=cases,
            ids=ids,
            scale=scale,
            seed=seed,
            table=table,
            release=int(release) if release is not None else None,
            lowercase_names=lowercase_names,
            jobs=jobs,
            progress=not quiet,
        )
    except PhantomError as exc:
        raise click.ClickException(str(exc)) from exc
    if not quiet:
        click.echo(report.summary())
