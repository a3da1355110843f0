"""``mamamia sync``: the click command. The sync machinery is imported only when it runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mamamia._sync._sync_options import DEFAULT_SOURCE

__all__ = ["sync_command"]


@click.command(name="sync")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--from",
    "source",
    default=DEFAULT_SOURCE,
    show_default=True,
    metavar="SYNID",
    help="Synapse project or folder to mirror.",
)
@click.option(
    "--include",
    multiple=True,
    metavar="GLOB",
    help="Only paths matching GLOB (case-insensitive, repeatable; a folder takes its contents).",
)
@click.option(
    "--cohort",
    metavar="WHERE",
    help='DuckDB WHERE clause on the clinical table, e.g. "pcr = 1": fetch only those cases.',
)
@click.option(
    "--cohort-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A cohort saved with Cohort.save: fetch exactly its cases (and the tables).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1, max=64),
    default=None,
    metavar="N",
    help="Concurrent downloads (default 8).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="List what would be transferred (files and bytes); write nothing.",
)
@click.option(
    "--delete", is_flag=True, help="Remove local files whose entity was deleted upstream."
)
@click.option(
    "--verify",
    is_flag=True,
    help="Re-hash every mirrored file against the state and report differences.",
)
@click.option("--repair", is_flag=True, help="With --verify: fetch again what differs.")
@click.option(
    "--synapse-config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Synapse config file ([endpoints], authtoken); default ~/.synapseConfig.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=1, max=100),
    default=5,
    show_default=True,
    help="Attempts per file before it is reported as failed.",
)
@click.option(
    "--backoff",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="First retry delay in seconds (doubles, with jitter).",
)
@click.option(
    "--progress/--no-progress", default=True, show_default=True, help="Progress bars on stderr."
)
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON on stdout.")
def sync_command(
    dest: Path,
    source: str,
    include: tuple[str, ...],
    cohort: str | None,
    cohort_file: Path | None,
    jobs: int | None,
    dry_run: bool,
    delete: bool,
    verify: bool,
    repair: bool,
    synapse_config: Path | None,
    retries: int,
    backoff: float,
    progress: bool,
    as_json: bool,
) -> None:
    """Mirror the MAMA-MIA release from Synapse into DEST (incremental, verified, resumable).

    Login uses $SYNAPSE_AUTH_TOKEN or the config file's authtoken (anonymous without either).
    Exit status 1 when any file failed; the report names each file and why.
    """
    from mamamia._sync._api import sync
    from mamamia._sync._report import SyncError

    if repair and not verify:
        raise click.UsageError("--repair goes with --verify")
    if cohort is not None and cohort_file is not None:
        raise click.UsageError("give --cohort or --cohort-file, not both")
    try:
        selection: str | list[str] | None = cohort
        if cohort_file is not None:
            from mamamia._sync._cohort_filter import cohort_file_ids

            selection = cohort_file_ids(cohort_file)
        report = sync(
            dest,
            source=source,
            include=include,
            cohort=selection,
            jobs=jobs,
            dry_run=dry_run,
            delete=delete,
            synapse_config=synapse_config,
            progress=progress,
            verify=verify,
            repair=repair,
            retries=retries,
            backoff=backoff,
        )
    except SyncError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=1))
    else:
        if dry_run:
            for item in report.would_download:
                click.echo(
                    f"would download {item.path} ({item.size if item.size is not None else '?'} bytes)"
                )
        click.echo(report.summary())
    if not report.ok:
        names = ", ".join(r.path for r in (report.failed + report.mismatched)[:10])
        click.echo(
            f"mamamia sync: {len(report.failed)} failed, {len(report.mismatched)} differ: {names}",
            err=True,
        )
        sys.exit(1)
