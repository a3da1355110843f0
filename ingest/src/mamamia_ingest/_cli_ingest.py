"""``mamamia ingest`` and ``mamamia verify`` (registered through ``mamamia_ingest._commands``)."""

from __future__ import annotations

import sys

import click

__all__ = ["ingest_command", "upgrade_command", "verify_command"]


def _chunks(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        parts = tuple(int(p) for p in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected Z,Y,X (three integers), got {value!r}") from None
    if len(parts) != 3 or any(p < 1 for p in parts):
        raise click.BadParameter(f"expected three positive integers Z,Y,X, got {value!r}")
    return parts


@click.command(name="ingest")
@click.argument("raw", type=click.Path(exists=True, file_okay=False))
@click.argument("catalog", type=click.Path(file_okay=False))
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: the number of CPU cores).",
)
@click.option(
    "--cases",
    "cases",
    default=None,
    metavar="PATTERN",
    help="Only these cases: glob patterns on patient_id, comma-separated (DUKE_*,NACT_0?).",
)
@click.option("--tables-only", is_flag=True, help="Ingest the tables without any volume.")
@click.option(
    "--strict",
    is_flag=True,
    help="Stop at the first error and leave the existing catalog exactly as it was.",
)
@click.option(
    "--chunks",
    callback=_chunks,
    default=None,
    metavar="Z,Y,X",
    help="Chunk shape of the volumes (default 64,64,64; --format 1: 32,128,128).",
)
@click.option(
    "--max-volume-mb",
    type=click.FloatRange(min=0.001),
    default=None,
    help="Refuse volumes whose header promises more voxel bytes (default 2048 MiB).",
)
@click.option(
    "--executor",
    type=click.Choice(["processes", "dask"]),
    default="processes",
    show_default=True,
    help="Where the per-case tasks run: local worker processes, or a Dask cluster.",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Dask scheduler (tcp://HOST:8786) for --executor dask; default: a local cluster of "
    "--jobs processes. Workers must see the catalog folder at the same path.",
)
@click.option(
    "--format",
    "format_version",
    type=click.Choice(["1", "2"]),
    default="2",
    show_default=True,
    help="Catalog format: 2 (sharded: a few files per case, inner chunks 64,64,64 unless "
    "--chunks says) or 1 (a file per chunk, chunks 32,128,128); docs/format.md.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; only the summary.")
def ingest_command(
    raw: str,
    catalog: str,
    jobs: int | None,
    cases: str | None,
    tables_only: bool,
    strict: bool,
    chunks: tuple[int, ...] | None,
    max_volume_mb: float | None,
    executor: str,
    scheduler: str | None,
    format_version: str,
    quiet: bool,
) -> None:
    """Turn the raw MAMA-MIA folder RAW into (or update) the catalog CATALOG (a folder, or
    s3://bucket/prefix: staged in a local cache folder, then published, catalog.json last).

    Exit status: 0 when no error was found (warnings and notes alone give 0), 1 when any error
    was found (the valid cases are still ingested), 2 when nothing could be ingested.
    """
    from mamamia_ingest._ingest import IngestError, ingest_to
    from mamamia_ingest._ingest_options import IngestOptions
    from mamamia_ingest._nifti import DEFAULT_MAX_VOLUME_BYTES

    budget = DEFAULT_MAX_VOLUME_BYTES if max_volume_mb is None else int(max_volume_mb * 2**20)
    try:
        options = IngestOptions(
            jobs=jobs,
            cases=cases,
            tables_only=tables_only,
            strict=strict,
            chunks=chunks,
            max_volume_bytes=budget,
            progress=not quiet,
            executor=executor,
            scheduler=scheduler,
            format_version=int(format_version),
        )
        report = ingest_to(raw, catalog, options)
    except IngestError as exc:
        click.echo(f"mamamia ingest: {exc}", err=True)
        sys.exit(2)
    click.echo(report.summary())
    sys.exit(report.exit_code)


@click.command(name="verify")
@click.argument("catalog", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--deep",
    is_flag=True,
    help="Also compare every preview with its full-resolution array and, with --raw, every "
    "volume with its source file's voxels.",
)
@click.option(
    "--raw",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="The raw folder the catalog was built from (for --deep).",
)
def verify_command(catalog: str, deep: bool, raw: str | None) -> None:
    """Check CATALOG: tables match their hashes, every array and chunk exists and decodes
    (crc32c), every volume matches its checksum. Exit status 0 when all is well, else 1."""
    from mamamia_ingest._verify import verify

    if raw is not None and not deep:
        raise click.UsageError("--raw is used by --deep only; add --deep")
    report = verify(catalog, deep=deep, raw=raw)
    click.echo(report.summary())
    sys.exit(report.exit_code)


@click.command(name="upgrade")
@click.argument("catalog", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Cases rewritten at once (default: the number of CPU cores).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be rewritten; change nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; only the summary.")
def upgrade_command(catalog: str, jobs: int | None, dry_run: bool, quiet: bool) -> None:
    """Rewrite the format-1 catalog folder CATALOG as format 2 (sharded), without the raw
    folder: every case as a new generation, its voxels checked equal, catalog.json replaced
    last. Resumable; a format-2 catalog is left as it is. Exit status 0 when done (or nothing
    to do), 1 when a case could not be upgraded (catalog.json then stays format 1), 2 when
    the upgrade cannot run."""
    from mamamia_ingest._ingest_report import IngestError
    from mamamia_ingest._upgrade import upgrade

    try:
        report = upgrade(catalog, jobs=jobs, dry_run=dry_run, progress=not quiet)
    except IngestError as exc:
        click.echo(f"mamamia upgrade: {exc}", err=True)
        sys.exit(2)
    click.echo(report.summary())
    sys.exit(report.exit_code)
