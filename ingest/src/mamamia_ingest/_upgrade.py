"""``mamamia upgrade CATALOG``: a format-1 catalog folder becomes format 2, without the raw folder.

Each case's generation is read phase by phase through the SDK's reader (every chunk's crc32c
checked) and written as a new format-2 generation beside it, by ingest's writers and publish
rule: under a temporary name, its voxels compared with the old generation's (the new arrays
read back by zarr-python), its root attributes written last, then renamed into place. The new
generation id is the one ``mamamia ingest RAW CATALOG`` gives the same source files in format 2,
so a later ingest from the raw folder reuses it. Then the tables that name generations are
rewritten and ``catalog.json`` (``"format_version": 2``) is replaced last: readers of the old
manifest keep reading the old generations, which the next ingest or upgrade removes. A stopped
upgrade keeps its finished generations, and the next run reuses them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import mamamia
from mamamia import MamamiaError, write_atomic
from mamamia.manifest import manifest_text, parse_manifest
from mamamia.objstore import is_store_url
from mamamia.progress import progress_bar
from mamamia_ingest._catalog_writer import (
    CatalogLocked,
    catalog_lock,
    collect_garbage,
    read_previous,
    write_table,
)
from mamamia_ingest._ingest_report import IngestError
from mamamia_ingest._kinetic_features import FEATURES_VERSION
from mamamia_ingest._lifecycle import publish_refusal
from mamamia_ingest._shard_write import FORMAT2_INNER_ZYX
from mamamia_ingest._volumes import (
    LAYOUT_VERSION,
    VolumeSettings,
    array_writer,
    finished_generation,
    generation_id,
)
from mamamia_ingest._zarr_write import group_metadata, write_new_file
from mamamia_schema import CatalogManifest, catalog_version_of

__all__ = ["UpgradeReport", "upgrade"]

#: What every upgraded generation is written with: ingest's format-2 defaults.
FORMAT2_SETTINGS = VolumeSettings(chunks_zyx=FORMAT2_INNER_ZYX, format_version=2)
_REINGEST = "re-ingest it from the raw folder: mamamia ingest RAW CATALOG"


@dataclass
class UpgradeReport:
    """What one ``upgrade`` did (or, with ``dry_run``, would do)."""

    catalog: str
    dry_run: bool = False
    #: The catalog was format 2 already: nothing was done.
    already: bool = False
    generations: int = 0
    written: int = 0
    #: Format-2 generations found finished (by an earlier, stopped run) and kept.
    reused: int = 0
    errors: list[str] = field(default_factory=list)
    previous_version: str | None = None
    catalog_version: str | None = None
    published: bool = False
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    def summary(self) -> str:
        where = self.catalog
        if self.already:
            return f"{where} is already format 2: nothing to do"
        if self.dry_run:
            todo = self.generations - self.reused
            return (
                f"dry run: {where} is format 1; mamamia upgrade would rewrite {todo} of "
                f"{self.generations} case generations as format 2 ({self.reused} done by an "
                "earlier run), check their voxels, rewrite the volumes and cases tables, and "
                "replace catalog.json last (format_version 2); nothing was changed"
            )
        lines = [
            f"upgrade of {where}: {self.written} generations rewritten as format 2, "
            f"{self.reused} kept from an earlier run, {len(self.errors)} failed "
            f"({self.seconds:.1f} s)"
        ]
        lines += [f"  error: {e}" for e in self.errors]
        if self.published:
            lines.append(
                f"catalog.json now says format_version 2 (catalog version "
                f"{self.previous_version} -> {self.catalog_version})"
            )
        elif self.errors:
            lines.append(
                "catalog.json is unchanged (still format 1); run mamamia upgrade again to "
                "resume: finished cases are kept"
            )
        return "\n".join(lines)


def upgrade(
    catalog: str | os.PathLike[str],
    *,
    jobs: int | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> UpgradeReport:
    """Rewrite the format-1 catalog folder ``catalog`` as format 2 (docs/format.md).

    ``jobs`` cases are rewritten at once (default: one per CPU). Case problems are returned in
    the report (``catalog.json`` then stays as it was); ``IngestError`` is raised when the
    upgrade cannot run at all (not a catalog folder, a store URL, another ingest running).
    """
    started = time.perf_counter()
    if is_store_url(str(catalog)):
        raise IngestError(
            f"{catalog}: mamamia upgrade rewrites a catalog folder; upgrade an object-store "
            f"catalog by re-ingesting it: mamamia ingest RAW {catalog}"
        )
    n_jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs < 1:
        raise IngestError(f"--jobs must be at least 1, got {n_jobs}")
    root = Path(catalog).resolve()
    report = UpgradeReport(catalog=str(catalog), dry_run=dry_run)
    try:
        manifest = parse_manifest((root / "catalog.json").read_bytes(), str(catalog))
    except OSError:
        raise IngestError(f"{catalog}: no catalog.json here (not a catalog folder)") from None
    except MamamiaError as exc:
        raise IngestError(str(exc)) from None
    report.previous_version = manifest.catalog_version
    if manifest.format_version >= 2:
        report.already = True
        return report
    try:
        with catalog_lock(root):
            _run(root, manifest, report, n_jobs, progress)
    except CatalogLocked as exc:
        raise IngestError(str(exc)) from None
    report.seconds = time.perf_counter() - started
    return report


def _run(
    root: Path, manifest: CatalogManifest, report: UpgradeReport, jobs: int, progress: bool
) -> None:
    prev = read_previous(root)
    olds = sorted(prev.generations)
    report.generations = len(olds)
    if report.dry_run:
        report.reused = sum(1 for rel in olds if _finished_target(root, rel) is not None)
        return
    renames: dict[str, str] = {}
    bar = progress_bar(progress and bool(olds), total=len(olds), unit="case", desc="upgrade")
    pool = ThreadPoolExecutor(jobs)
    try:
        with mamamia.open(root, guard=False) as reader:
            futures = {rel: pool.submit(_upgrade_generation, root, rel, reader) for rel in olds}
            for rel, future in futures.items():
                try:
                    new, reused = future.result()
                except _CaseFailed as exc:
                    report.errors.append(str(exc))
                except Exception as exc:  # one unreadable case must not stop the others
                    report.errors.append(_say(rel, exc))
                else:
                    renames[rel] = new
                    report.reused += reused
                    report.written += not reused
                bar.update(1)
                bar.set_postfix_str(f"{len(renames)}/{len(olds)} cases", refresh=False)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # interrupted: start no further case
        bar.close()
    if report.errors:
        return
    refs = _rewrite_tables(root, manifest, renames)
    version = catalog_version_of(
        dataset_release=manifest.dataset_release,
        source_files=manifest.source_files,
        tables=refs,
        settings=FORMAT2_SETTINGS.byte_settings() | {"upgraded_from": manifest.catalog_version},
    )
    doc = manifest.model_dump(mode="json") | {
        "format_version": 2,
        "catalog_version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "tables": refs,
    }
    write_atomic(
        root / "catalog.json", manifest_text(CatalogManifest.model_validate(doc)), fsync=True
    )
    report.catalog_version, report.published = version, True
    # Keep what the new manifest and the old one name: readers of the old one keep working.
    keep_tables = {str(ref["path"]) for ref in refs.values()} | prev.table_paths
    collect_garbage(root, set(renames.values()) | prev.generations, keep_tables)


class _CaseFailed(Exception):
    pass


def _say(rel: str, exc: BaseException) -> str:
    case = rel.split("/")[1]
    return f"case {case}: {rel} could not be upgraded ({type(exc).__name__}: {exc})"


def _target(root: Path, rel: str) -> tuple[str, dict[str, Any]]:
    """The format-2 generation ``rel`` becomes: its path and its root ``mamamia`` block."""
    case = rel.split("/")[1]
    block = finished_generation(root / rel)
    if block is None:
        raise _CaseFailed(f"case {case}: {rel} is not a finished generation ({_REINGEST})")
    source: dict[str, Any] = block.get("source") or {}
    settings: dict[str, Any] = source.get("settings") or {}
    if settings.get("format_version") == 2:
        return rel, block
    stale = (settings.get("layout_version"), settings.get("features_version"))
    if stale != (LAYOUT_VERSION, FEATURES_VERSION):
        raise _CaseFailed(
            f"case {case}: {rel} was written by an older ingest (layout, features {stale}; "
            f"this one writes {(LAYOUT_VERSION, FEATURES_VERSION)}); {_REINGEST}"
        )
    sha = {str(f.get("role")): f.get("sha256") for f in source.get("files", [])}
    if not sha or not all(isinstance(v, str) for v in sha.values()):
        raise _CaseFailed(f"case {case}: {rel} does not record its source hashes; {_REINGEST}")
    times = block.get("phase_times_s")
    gen = generation_id(FORMAT2_SETTINGS, tuple(times) if times is not None else None, sha)
    new_source = {**source, "settings": FORMAT2_SETTINGS.byte_settings()}
    new_block = {k: v for k, v in block.items() if k != "complete"}
    new_block |= {"generation": gen, "source": new_source, "complete": True}  # complete: last
    return f"volumes/{case}/{gen}.zarr", new_block


def _finished_target(root: Path, rel: str) -> str | None:
    try:
        new, _block = _target(root, rel)
    except _CaseFailed:
        return None
    return new if finished_generation(root / new) is not None else None


def _upgrade_generation(root: Path, rel: str, reader: mamamia.Catalog) -> tuple[str, bool]:
    """Write the format-2 copy of generation ``rel``; returns its path and whether it was
    already there (finished by an earlier run, or ``rel`` is format 2 itself)."""
    new, block = _target(root, rel)
    final = root / new
    if new == rel or finished_generation(final) is not None:
        return new, True
    tmp = final.parent / f"pending.zarr.tmp-{uuid.uuid4().hex}"
    try:
        os.mkdir(tmp)  # its zarr.json (the root group, with ``complete``) is written last
        old = root / rel
        for meta in sorted(old.rglob("zarr.json")):
            doc = json.loads(meta.read_bytes())
            folder = meta.parent.relative_to(old)
            if doc.get("node_type") == "array":
                label = folder.parts[:1] == ("labels",)  # labels/<kind>/<level>: a mask
                _copy_array(reader, f"{rel}/{folder.as_posix()}", tmp / folder, label=label)
            elif folder != Path("."):
                (tmp / folder).mkdir(parents=True, exist_ok=True)
                write_new_file(str(tmp / folder / "zarr.json"), [group_metadata(doc["attributes"])])
        attrs = json.loads((old / "zarr.json").read_bytes())["attributes"] | {"mamamia": block}
        write_new_file(str(tmp / "zarr.json"), [group_metadata(attrs)])
        refusal = publish_refusal(root)
        if refusal is not None:
            raise _CaseFailed(f"case {rel.split('/')[1]}: {refusal}")
        try:
            os.rename(tmp, final)
        except OSError:
            if finished_generation(final) is None:  # else another run finished it first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return new, False


def _copy_array(reader: mamamia.Catalog, src_rel: str, dst: Path, *, label: bool) -> None:
    """Rewrite one array phase by phase (memory: one phase), then compare every voxel."""
    import zarr

    src = reader.open_array(src_rel)
    shape = tuple(int(n) for n in src.shape)
    dst.parent.mkdir(parents=True, exist_ok=True)
    writer = array_writer(
        dst.parent, dst.name, shape, np.dtype(src.dtype), FORMAT2_SETTINGS, label=label
    )
    try:
        for t in range(shape[0]):
            writer.write(t, np.asarray(src[t]))
    finally:
        writer.close()
    copy = zarr.open_array(str(dst), mode="r")
    for t in range(shape[0]):
        if copy.dtype != src.dtype or not np.array_equal(copy[t], np.asarray(src[t])):
            raise _CaseFailed(
                f"case {src_rel.split('/')[1]}: {src_rel} phase {t} reads back different "
                "voxels from its format-2 copy; nothing was published for it"
            )


def _rewrite_tables(
    root: Path, manifest: CatalogManifest, renames: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Every table, with ``zarr_path`` and ``generation`` naming the new generations."""

    def new_path(path: Any) -> Any:
        if not isinstance(path, str):
            return path
        head = "/".join(path.split("/")[:3])
        return renames.get(head, head) + path[len(head) :]

    def new_generation(case: Any, gen: Any) -> Any:
        new = renames.get(f"volumes/{case}/{gen}.zarr") if isinstance(gen, str) else None
        return gen if new is None else new.split("/")[2].removesuffix(".zarr")

    refs: dict[str, dict[str, Any]] = {}
    for name, ref in manifest.tables.items():
        table = pq.read_table(root / ref.path)
        columns: dict[str, Callable[[pa.Table], list[Any]]] = {}
        if "zarr_path" in table.column_names:
            columns["zarr_path"] = lambda t: [new_path(p) for p in t["zarr_path"].to_pylist()]
        if {"generation", "patient_id"} <= set(table.column_names):
            columns["generation"] = lambda t: [
                new_generation(c, g)
                for c, g in zip(
                    t["patient_id"].to_pylist(), t["generation"].to_pylist(), strict=True
                )
            ]
        if not columns:
            refs[name] = ref.model_dump(mode="json")
            continue
        for column, values in columns.items():
            index = table.schema.get_field_index(column)
            kind = table.schema.field(index)
            table = table.set_column(index, kind, pa.array(values(table), type=kind.type))
        refs[name] = write_table(root, name, table)
    return refs
