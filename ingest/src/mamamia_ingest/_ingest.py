"""``ingest(raw, catalog)``: a raw MAMA-MIA folder becomes (or updates) a catalog.

Plan: read the tables in this process, then one task per case with images, in ``jobs`` spawned
worker processes (zarr runs an event-loop thread, so forking is unsafe); each task writes or
reuses one immutable generation. Then the tables are written to new content-addressed files and
``catalog.json`` last. Nothing a previous manifest names is touched, so readers of it keep
working, and a killed run leaves only unnamed folders that the next run reuses or removes.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from tqdm import tqdm

from mamamia import read_clinical_table, read_patient_info, read_quality_scores, read_splits
from mamamia._objstore import is_store_url
from mamamia_ingest._catalog_writer import (
    CatalogLocked,
    atomic_write,
    catalog_lock,
    collect_garbage,
    read_previous,
    write_table,
)
from mamamia_ingest._layout import CaseFiles, RawLayout, discover
from mamamia_ingest._lifecycle import init_pool_worker
from mamamia_ingest._nifti import DEFAULT_MAX_VOLUME_BYTES, hash_file
from mamamia_ingest._report_checks import clean_message, clean_problems, unknown_case_problems
from mamamia_ingest._tables_out import build_tables
from mamamia_ingest._volumes import (
    DEFAULT_CHUNKS_ZYX,
    CaseJob,
    CaseResult,
    VolumeSettings,
    init_worker,
    process_case,
)
from mamamia_schema import (
    CatalogManifest,
    Problem,
    Severity,
    TableRef,
    catalog_version_of,
)

__all__ = ["IngestError", "IngestReport", "ingest"]


class IngestError(Exception):
    """The ingest cannot run at all (missing clinical table, bad arguments, locked catalog)."""


class IngestReport(BaseModel):
    """What one ingest did; saved as ``ingest-report.json`` in the catalog."""

    raw: str
    catalog: str
    catalog_version: str | None = None
    previous_catalog_version: str | None = None
    #: True when catalog.json was (re)written; False for a run that found nothing to change.
    published: bool = False
    stopped_early: bool = False
    tables_only: bool = False
    cases: int = 0
    cases_with_images: int = 0
    built: int = 0
    reused: int = 0
    failed: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    jobs: int = 1
    problems: list[Problem] = Field(default_factory=list)
    #: Why the run stopped before writing anything (exit 2); the catalog is unchanged.
    fatal: str | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]

    @property
    def notes(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.NOTE]

    @property
    def exit_code(self) -> int:
        """2 for a fatal error, 1 when any error was found, else 0 (warnings and notes alone
        do not fail)."""
        if self.fatal is not None:
            return 2
        return 1 if self.errors else 0

    def summary(self, max_lines: int = 200) -> str:
        """A human summary: counts, then every problem (errors first)."""
        mb = self.bytes_read / 1e6
        rate = mb / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"mamamia ingest {self.raw} -> {self.catalog}",
            f"  cases: {self.cases} ({self.cases_with_images} with volumes); "
            f"generations built {self.built}, reused {self.reused}, failed {self.failed}",
            f"  read {mb:.1f} MB in {self.seconds:.1f} s ({rate:.1f} MB/s, {self.jobs} jobs)",
        ]
        if self.stopped_early:
            lines.append("  stopped at the first error (--strict): the catalog was left as it was")
        elif self.published:
            lines.append(f"  catalog_version {self.catalog_version} (published)")
        else:
            lines.append(f"  catalog_version {self.catalog_version} (unchanged)")
        lines.append(
            f"  problems: {len(self.errors)} errors, {len(self.warnings)} warnings, "
            f"{len(self.notes)} notes"
        )
        order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.NOTE: 2}
        ranked = sorted(self.problems, key=lambda p: order[p.severity])
        for p in ranked[:max_lines]:
            lines.append(f"  {p.severity.value}: {p.message}")
        if len(ranked) > max_lines:
            lines.append(f"  ... and {len(ranked) - max_lines} more (see ingest-report.json)")
        return "\n".join(lines)


def _problem(
    severity: Severity, message: str, rule: str, case: str | None = None, file: str | None = None
) -> Problem:
    return Problem(severity=severity, case=case, file=file, rule=rule, message=message)


def _patterns(cases: str | Sequence[str] | None) -> list[str] | None:
    if cases is None:
        return None
    items = [cases] if isinstance(cases, str) else list(cases)
    out = [p.strip().upper() for item in items for p in item.split(",") if p.strip()]
    return out or None


def _selected(case: str, patterns: list[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(case, p) for p in patterns)


def _phase_times(
    record: Any, files: CaseFiles, problems: list[Problem]
) -> tuple[float | None, ...] | None:
    times = getattr(record, "acquisition_times", None) if record is not None else None
    if not times:
        return None
    if len(times) != len(files.phases):
        problems.append(
            _problem(
                Severity.NOTE,
                f"case {files.patient_id}: acquisition_times has {len(times)} values for "
                f"{len(files.phases)} image phases; acquisition_time_s is left null",
                "phase_times",
                case=files.patient_id,
            )
        )
        return None
    return tuple(float(t) if t is not None and math.isfinite(float(t)) else None for t in times)


def _table_sources(layout: RawLayout) -> dict[str, str]:
    """relpath -> sha256 of every table-like source (the volume files are in ``sources``)."""
    paths = [layout.clinical, layout.splits, layout.quality, *layout.patient_info.values()]
    return {layout.rel(p): hash_file(p) for p in sorted(q for q in paths if q is not None)}


def ingest(
    raw: str | os.PathLike[str],
    catalog: str | os.PathLike[str],
    *,
    jobs: int | None = None,
    cases: str | Sequence[str] | None = None,
    tables_only: bool = False,
    strict: bool = False,
    chunks: Sequence[int] | None = None,
    max_volume_bytes: int = DEFAULT_MAX_VOLUME_BYTES,
    progress: bool = True,
    executor: str = "processes",
    scheduler: str | None = None,
) -> IngestReport:
    """Ingest the raw MAMA-MIA folder ``raw`` into the catalog folder ``catalog``
    (or ``s3://bucket/prefix``: staged locally, then published; see docs/scaling.md).

    ``cases`` (glob patterns on patient_id, comma-separated) limits the catalog to those cases;
    ``chunks`` is the (z, y, x) chunk shape. ``executor="dask"`` runs one task per case on a
    Dask cluster (``scheduler``: its address; default a LocalCluster of ``jobs`` processes).
    Problems are returned in the report, never raised;
    ``IngestError`` is raised only when nothing can be ingested (no clinical table, bad args).
    """
    if is_store_url(str(catalog)):
        from mamamia_ingest._publish import ingest_to_store

        report: IngestReport = ingest_to_store(
            raw, str(catalog), jobs=jobs, cases=cases, tables_only=tables_only, strict=strict,
            chunks=chunks, max_volume_bytes=max_volume_bytes, progress=progress,
            executor=executor, scheduler=scheduler,
        )  # fmt: skip
        return report
    started = time.perf_counter()
    raw_path = Path(raw).resolve()
    cat_path = Path(catalog).resolve()
    if not raw_path.is_dir():
        raise IngestError(f"{raw}: the raw folder does not exist")
    n_jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    if n_jobs < 1:
        raise IngestError(f"--jobs must be at least 1, got {n_jobs}")
    if executor not in ("processes", "dask"):
        raise IngestError(f"--executor must be 'processes' or 'dask', got {executor!r}")
    if scheduler is not None and executor != "dask":
        raise IngestError("--scheduler needs --executor dask")
    chunk_zyx = tuple(int(c) for c in chunks) if chunks is not None else DEFAULT_CHUNKS_ZYX
    if len(chunk_zyx) != 3 or any(c < 1 for c in chunk_zyx):
        raise IngestError(f"--chunks must be three positive integers Z,Y,X, got {chunks}")
    settings = VolumeSettings(
        chunks_zyx=(chunk_zyx[0], chunk_zyx[1], chunk_zyx[2]), max_volume_bytes=max_volume_bytes
    )
    created = not cat_path.exists()
    cat_path.mkdir(parents=True, exist_ok=True)
    try:
        with catalog_lock(cat_path):
            try:
                report = _run(
                    raw_path,
                    cat_path,
                    n_jobs,
                    _patterns(cases),
                    tables_only,
                    strict,
                    settings,
                    progress,
                    (executor, scheduler),
                )
            except IngestError as exc:
                # The previous run's report must not stay behind looking current.
                roots = {str(raw_path.resolve()): "RAW", str(cat_path.resolve()): "CATALOG"}
                failed = IngestReport(
                    raw=str(raw),
                    catalog=str(catalog),
                    jobs=n_jobs,
                    fatal=clean_message(str(exc), roots),
                )
                atomic_write(
                    cat_path / "ingest-report.json",
                    (failed.model_dump_json(indent=2) + "\n").encode(),
                )
                raise
    except CatalogLocked as exc:
        raise IngestError(str(exc)) from None
    except BaseException:
        if created and not (cat_path / "catalog.json").exists():
            shutil.rmtree(cat_path, ignore_errors=True)
        raise
    if report.stopped_early and created:
        shutil.rmtree(cat_path, ignore_errors=True)
    report.seconds = time.perf_counter() - started
    report.raw, report.catalog = str(raw), str(catalog)
    clean_problems(report.problems, raw_path, cat_path)
    if not report.stopped_early:
        atomic_write(
            cat_path / "ingest-report.json",
            (report.model_dump_json(indent=2) + "\n").encode(),
        )
    return report


def _run(
    raw: Path,
    catalog: Path,
    jobs: int,
    patterns: list[str] | None,
    tables_only: bool,
    strict: bool,
    settings: VolumeSettings,
    progress: bool,
    executor: tuple[str, str | None] = ("processes", None),
) -> IngestReport:
    report = IngestReport(raw=str(raw), catalog=str(catalog), jobs=jobs, tables_only=tables_only)
    prev = read_previous(catalog)
    report.previous_catalog_version = prev.catalog_version
    layout = discover(raw)
    problems = report.problems
    problems.extend(p for p in layout.problems if p.case is None or _selected(p.case, patterns))
    if layout.clinical is None:
        raise IngestError(f"{raw}: no clinical_and_imaging_info.xlsx here (the one required file)")

    def stop_now() -> bool:
        return strict and any(p.severity is Severity.ERROR for p in problems)

    try:
        clinical = read_clinical_table(layout.clinical, relpath=layout.rel(layout.clinical))
    except Exception as exc:  # TableReadError and friends: nothing to ingest
        raise IngestError(f"{layout.rel(layout.clinical)}: {exc}") from None
    problems.extend(p for p in clinical.problems if p.case is None or _selected(p.case, patterns))
    layout.patient_info = {
        c: path for c, path in layout.patient_info.items() if _selected(c, patterns)
    }
    extras = _read_optional_tables(layout, problems)
    if stop_now():
        report.stopped_early = True
        return report

    records = clinical.by_id()
    table_ids = [r.patient_id for r in clinical.records if _selected(r.patient_id, patterns)]
    image_ids = sorted(c for c in layout.cases if _selected(c, patterns))
    order = table_ids + [c for c in image_ids if c not in records]
    report.cases = len(order)
    for c in image_ids:
        if c not in records:
            problems.append(
                _problem(
                    Severity.WARNING,
                    f"case {c}: has images but no row in clinical_and_imaging_info; "
                    "its clinical fields are null",
                    "missing_row",
                    case=c,
                )
            )
    missing_images = [c for c in table_ids if c not in layout.cases or not layout.cases[c].phases]
    if missing_images and not tables_only:
        shown = ", ".join(missing_images[:10]) + (" ..." if len(missing_images) > 10 else "")
        problems.append(
            _problem(
                Severity.NOTE,
                f"{len(missing_images)} table rows have no images in this mirror "
                f"(has_images = false): {shown}",
                "no_images",
            )
        )

    problems.extend(
        unknown_case_problems(
            extras,
            [*records, *layout.cases],
            {
                "splits": layout.rel(layout.splits) if layout.splits else None,
                "quality": layout.rel(layout.quality) if layout.quality else None,
            },
        )
    )

    results: dict[str, CaseResult] = {}
    if not tables_only:
        case_jobs = []
        for c in image_ids:
            files = layout.cases[c]
            if files.broken or not files.phases:
                if not files.phases and not files.broken:
                    problems.append(
                        _problem(
                            Severity.WARNING,
                            f"case {c}: has masks but no image phases; the masks are ignored",
                            "no_images",
                            case=c,
                        )
                    )
                continue
            times = _phase_times(records.get(c), files, problems)
            case_jobs.append(CaseJob(c, tuple(files.files()), times, catalog, settings))
        if stop_now():
            report.stopped_early = True
            return report
        built_now = _run_jobs(case_jobs, jobs, strict, progress, results, report, executor)
        for r in results.values():
            problems.extend(r.problems)
        if report.stopped_early:
            # Leave the catalog exactly as it was: drop what this run added.
            for gen in built_now - prev.generations:
                shutil.rmtree(catalog / gen, ignore_errors=True)
                case_dir = (catalog / gen).parent
                if case_dir.is_dir() and not any(case_dir.iterdir()):
                    case_dir.rmdir()
            volumes = catalog / "volumes"
            if volumes.is_dir() and not any(volumes.iterdir()) and not prev.generations:
                volumes.rmdir()
            return report

    report.cases_with_images = sum(1 for r in results.values() if r.generation)
    tables = build_tables(order, clinical, extras, results, layout, tables_only)
    refs = {name: TableRef(**write_table(catalog, name, table)) for name, table in tables.items()}
    source_files = _table_sources(layout)
    byte_settings = settings.byte_settings() | {"tables_only": tables_only, "cases": patterns}
    version = catalog_version_of(
        dataset_release=clinical.release,
        source_files=source_files,
        tables=refs,
        settings=byte_settings,
    )
    report.catalog_version = version
    if prev.catalog_version != version:
        manifest = CatalogManifest(
            catalog_version=version,
            dataset_release=clinical.release,
            created_at=datetime.now(UTC),
            source_files=source_files,
            tables=refs,
        )
        text = json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n"
        atomic_write(catalog / "catalog.json", text.encode())
        report.published = True
    # Keep what the new manifest and the one before it name (readers of either keep working).
    keep_tables = {ref.path for ref in refs.values()} | prev.table_paths
    keep_gens = {r.zarr_dir for r in results.values() if r.zarr_dir} | prev.generations
    collect_garbage(catalog, keep_gens, keep_tables)
    return report


def _read_optional_tables(layout: RawLayout, problems: list[Problem]) -> dict[str, Any]:
    """Splits, quality scores and per-case JSON, each optional (their columns are then null)."""
    out: dict[str, Any] = {"splits": None, "quality": None, "patient_info": {}}
    if layout.splits is not None:
        try:
            splits = read_splits(layout.splits, relpath=layout.rel(layout.splits))
            problems.extend(splits.problems)
            out["splits"] = splits.splits
        except Exception as exc:
            problems.append(
                _problem(
                    Severity.ERROR,
                    f"{layout.rel(layout.splits)}: cannot be read ({exc}); split is null",
                    "file",
                    file=layout.rel(layout.splits),
                )
            )
    if layout.quality is not None:
        try:
            quality = read_quality_scores(layout.quality, relpath=layout.rel(layout.quality))
            problems.extend(quality.problems)
            out["quality"] = quality.rows
        except Exception as exc:
            problems.append(
                _problem(
                    Severity.ERROR,
                    f"{layout.rel(layout.quality)}: cannot be read ({exc}); quality columns are null",
                    "file",
                    file=layout.rel(layout.quality),
                )
            )
    for case, path in sorted(layout.patient_info.items()):
        try:
            info, info_problems = read_patient_info(path, relpath=layout.rel(path))
        except Exception as exc:
            problems.append(
                _problem(
                    Severity.ERROR,
                    f"case {case}: {layout.rel(path)} cannot be read ({exc})",
                    "file",
                    case=case,
                    file=layout.rel(path),
                )
            )
            continue
        problems.extend(info_problems)
        if info is not None:
            out["patient_info"][case] = info
    return out


def _worker_context() -> multiprocessing.context.BaseContext:
    """A start method that never forks this (threaded: zarr runs an event loop) process.

    forkserver: one clean server process imports the ingest modules once and every worker is
    forked from it, so N workers do not each pay the imports (seconds each); spawn elsewhere.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["mamamia_ingest._volumes"])
        return ctx
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def _main_not_reimported() -> Iterator[None]:
    """Keep spawned/forkserver workers from re-running the caller's ``__main__``.

    The workers need only importable code (``process_case``, ``CaseJob``), but multiprocessing
    re-imports the parent's main script in each worker: a script without an
    ``if __name__ == "__main__"`` guard (or a notebook, or ``python - <<EOF``) would then break,
    and every worker would pay the main script's imports. Hidden while the pool starts workers.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    missing = object()
    saved_file = main.__dict__.get("__file__", missing)
    saved_spec = main.__dict__.get("__spec__", missing)
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        if saved_file is not missing:
            main.__dict__["__file__"] = saved_file
        if saved_spec is missing:
            main.__dict__.pop("__spec__", None)
        else:
            main.__dict__["__spec__"] = saved_spec


def _run_jobs(
    case_jobs: list[CaseJob],
    jobs: int,
    strict: bool,
    progress: bool,
    results: dict[str, CaseResult],
    report: IngestReport,
    executor: tuple[str, str | None] = ("processes", None),
) -> set[str]:
    """Run the case tasks; returns the generations this run built (not reused)."""
    built: set[str] = set()
    total = sum(sum(f.size for f in j.files) for j in case_jobs)
    bar = tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc="ingest",
        file=sys.stderr,
        disable=not progress or not case_jobs,
        dynamic_ncols=True,
    )

    def take(job: CaseJob, result: CaseResult) -> bool:
        results[job.patient_id] = result
        bar.update(sum(f.size for f in job.files))
        bar.set_postfix_str(f"{len(results)}/{len(case_jobs)} cases", refresh=False)
        if result.generation is None:
            report.failed += 1
        elif result.reused:
            report.reused += 1
        else:
            report.built += 1
            report.bytes_read += result.bytes_read
            if result.zarr_dir:
                built.add(result.zarr_dir)
        return strict and any(p.severity is Severity.ERROR for p in result.problems)

    try:
        if executor[0] == "dask":
            from mamamia_ingest._dask_executor import run_on_dask

            if case_jobs:
                report.stopped_early = run_on_dask(
                    case_jobs, scheduler=executor[1], workers=jobs, take=take
                )
            return built
        if jobs == 1 or len(case_jobs) <= 1:
            init_worker()
            for job in case_jobs:
                if take(job, process_case(job)):
                    report.stopped_early = True
                    break
            return built
        ctx = _worker_context()
        with (
            _main_not_reimported(),
            ProcessPoolExecutor(
                max_workers=min(jobs, len(case_jobs)),
                mp_context=ctx,
                initializer=init_pool_worker,  # workers exit when this process does
                initargs=(os.getpid(),),
            ) as pool,
        ):
            # Keep at most 2 tasks per worker queued, so --strict can stop promptly.
            pending: dict[Future[CaseResult], CaseJob] = {}
            queue: Iterable[CaseJob] = iter(case_jobs)
            limit = 2 * jobs

            def refill() -> None:
                while len(pending) < limit:
                    job = next(queue, None)  # type: ignore[call-overload]
                    if job is None:
                        return
                    pending[pool.submit(process_case, job)] = job

            refill()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = pending.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        raise IngestError(
                            f"a worker process died while ingesting case {job.patient_id} "
                            "(killed, or out of memory: try fewer --jobs); the finished cases "
                            "are kept and the next run reuses them"
                        ) from None
                    if take(job, result):
                        report.stopped_early = True
                if report.stopped_early:
                    for fut in pending:
                        fut.cancel()
                    for fut, job in list(pending.items()):
                        if not fut.cancelled():
                            take(job, fut.result())
                    return built
                refill()
        return built
    finally:
        bar.close()
