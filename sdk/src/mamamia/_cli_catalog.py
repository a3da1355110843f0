"""``mamamia query`` and ``mamamia case``: the catalog from the shell."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mamamia._catalog import Catalog
from mamamia._errors import MamamiaError

__all__ = ["CATALOG_ENV", "cache_group", "case_command", "open_location", "query_command"]

#: Environment variable naming the default catalog (a folder or a server URL).
CATALOG_ENV = "MAMAMIA_CATALOG"

_DEFAULT_COLUMNS = ("patient_id", "dataset", "age", "pcr", "tumor_subtype_group", "split")


def open_location(location: str | None) -> Catalog:
    """A Catalog for a folder path or an http(s) URL; ``None`` means $MAMAMIA_CATALOG."""
    target = location or os.environ.get(CATALOG_ENV)
    if not target:
        raise click.UsageError(f"no catalog given: pass --catalog PATH|URL or set ${CATALOG_ENV}")
    from mamamia._open import connect, server_url

    url = server_url(target)
    if url is not None:
        catalog: Catalog = connect(url)
        return catalog
    from mamamia._open import open as open_folder

    return open_folder(target)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _format_cell(value: Any, width: int = 28) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_table(table: pa.Table) -> None:
    names = table.column_names
    rows = [[_format_cell(v) for v in row.values()] for row in table.to_pylist()]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    click.echo("  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)))
    click.echo("  ".join("-" * w for w in widths))
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def _csv_ready(table: pa.Table) -> pa.Table:
    # CSV has no nested values: lists and structs are written as JSON text, as the server does.
    columns = []
    for column in table.columns:
        if pa.types.is_nested(column.type):
            texts = [None if v is None else json.dumps(_jsonable(v)) for v in column.to_pylist()]
            column = pa.chunked_array([pa.array(texts, type=pa.string())])
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def emit(table: pa.Table, fmt: str, output: str | None) -> None:
    """Write an Arrow table to stdout or ``output`` in a CLI format."""
    if fmt == "parquet":
        if output is None and sys.stdout.isatty():
            raise click.UsageError("--format parquet writes binary: add --output FILE")
        pq.write_table(table, output or sys.stdout.buffer)
        return
    if fmt == "csv":
        sink = output or sys.stdout.buffer
        pacsv.write_csv(_csv_ready(table), sink)
        return
    if fmt == "json":
        text = json.dumps([_jsonable(row) for row in table.to_pylist()], indent=1, default=str)
        if output:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
        else:
            click.echo(text)
        return
    _print_table(table)


@click.command("query")
@click.argument("where", required=False)
@click.option("--sql", "sql", help="A full SELECT instead of a WHERE expression over cases.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet"]),
    default="table",
    show_default=True,
)
@click.option(
    "--columns",
    help="Comma-separated columns of a WHERE query's answer (default: all for csv, json and "
    f"parquet; {','.join(_DEFAULT_COLUMNS)} for the table on screen; '*' for all).",
)
@click.option("--param", "params", multiple=True, help="NAME=VALUE for $NAME (JSON values).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to a file.")
@click.option(
    "--catalog", "location", help=f"Catalog folder or server URL (default: ${CATALOG_ENV})."
)
def query_command(
    where: str | None,
    sql: str | None,
    fmt: str,
    columns: str | None,
    params: tuple[str, ...],
    output: str | None,
    location: str | None,
) -> None:
    """Select a cohort by a WHERE expression over cases, or run --sql."""
    if (where is None) == (sql is None):
        raise click.UsageError("give a WHERE expression or --sql (not both)")
    values: dict[str, Any] = {}
    for item in params:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise click.UsageError(f"--param needs NAME=VALUE, not {item!r}")
        try:
            values[name] = json.loads(raw)
        except ValueError:
            values[name] = raw
    try:
        with open_location(location) as catalog:
            if sql is not None:
                table = catalog.sql(sql, **values)
            else:
                cohort = catalog.cohort(where, **values)
                table = cohort.to_arrow()
                # Files carry every column; only the on-screen table shows the short default.
                default = ",".join(_DEFAULT_COLUMNS) if fmt == "table" else "*"
                wanted = [c.strip() for c in (columns or default).split(",")]
                if wanted != ["*"]:
                    present = [c for c in wanted if c in table.column_names]
                    missing = [c for c in wanted if c not in table.column_names]
                    if missing and columns:
                        raise click.UsageError(f"unknown columns: {', '.join(missing)}")
                    table = table.select(present)
            emit(table, fmt, output)
            if fmt == "table":
                click.echo(f"({table.num_rows} rows, catalog {catalog.version})", err=True)
    except MamamiaError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("case")
@click.argument("patient_id")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--catalog", "location", help=f"Catalog folder or server URL (default: ${CATALOG_ENV})."
)
def case_command(patient_id: str, fmt: str, location: str | None) -> None:
    """Show one case's fields and volumes."""
    try:
        with open_location(location) as catalog:
            case = catalog.case(patient_id)
            fields = {k: _jsonable(v) for k, v in case.fields.items()}
            volumes = [_jsonable(v) for v in case.volumes]
    except MamamiaError as exc:
        raise click.ClickException(str(exc)) from exc
    if fmt == "json":
        click.echo(json.dumps({"fields": fields, "volumes": volumes}, indent=1, default=str))
        return
    width = max(len(k) for k in fields)
    for key, value in fields.items():
        click.echo(f"{key.ljust(width)}  {'' if value is None else value}")
    click.echo("")
    click.echo("volumes:")
    for volume in volumes:
        phase = "" if volume.get("phase") is None else f" phase {volume['phase']}"
        click.echo(
            f"  {volume['kind']}{phase}: shape {volume['shape']} {volume['dtype']} "
            f"spacing_xyz {volume['spacing_xyz']} {volume['orientation']}"
        )


def _cache_root(cache_dir: str | None) -> Path:
    from mamamia._cached import cache_root

    return Path(cache_dir) if cache_dir else cache_root()


def _cache_folders(root: Path) -> list[Path]:
    if (root / "catalog.json").is_file() or (root / ".mamamia").is_dir():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / ".mamamia").is_dir())


@click.group("cache")
def cache_group() -> None:
    """Inspect or empty the local chunk cache of remote catalogs."""


@cache_group.command("info")
@click.option("--cache-dir", help="A cache folder or the cache root (default: $MAMAMIA_CACHE_DIR).")
def cache_info(cache_dir: str | None) -> None:
    """Size, files and catalog version of each cache."""
    from mamamia._errors import CatalogError
    from mamamia._manifest import read_manifest
    from mamamia._store import ChunkCache

    root = _cache_root(cache_dir)
    folders = _cache_folders(root)
    if not folders:
        click.echo(f"no cache under {root}")
        return
    for folder in folders:
        cache = ChunkCache(folder)
        entries = cache.entries()
        size = sum(s for _p, s, _u in entries)
        version = "-"
        if (folder / "catalog.json").is_file():
            try:
                version = read_manifest(folder).catalog_version
            except CatalogError as exc:  # a listing goes on past one damaged cache
                version = f"unreadable ({exc})"
        cases = len(list((folder / "volumes").glob("*"))) if (folder / "volumes").is_dir() else 0
        click.echo(
            f"{folder}: {size / 2**20:.1f} MiB in {len(entries)} files, {cases} cases, "
            f"catalog {version}"
        )


@cache_group.command("clear")
@click.option("--cache-dir", help="A cache folder or the cache root (default: $MAMAMIA_CACHE_DIR).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def cache_clear(cache_dir: str | None, yes: bool) -> None:
    """Delete the cached chunks (tables and manifests stay, so the cache still opens)."""
    from mamamia._store import ChunkCache

    root = _cache_root(cache_dir)
    folders = _cache_folders(root)
    if not folders:
        click.echo(f"no cache under {root}")
        return
    if not yes:
        click.confirm(
            f"delete the cached chunks of {len(folders)} cache(s) under {root}?", abort=True
        )
    for folder in folders:
        removed = ChunkCache(folder).clear()
        click.echo(f"{folder}: removed {removed} files")
