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

from mamamia import (
    read_clinical_table,
    read_patient_info,
    read_quality_scores,
    read_splits,
    write_atomic,
)
from mamamia.manifest import manifest_text
from mamamia.objstore import ObjectStore, is_store_url
from mamamia.progress import progress_bar
from mamamia.raw import CLINICAL_TABLE_NAMES, CaseFiles, RawLayout, discover
from mamamia_ingest._catalog_writer import (
    CatalogLocked,
    catalog_lock,
    collect_garbage,
    read_previous,
    write_table,
)
from mamamia_ingest._ingest_options import IngestOptions
from mamamia_ingest._ingest_report import IngestError, IngestReport
from mamamia_ingest._lifecycle import watch_owner
from mamamia_ingest._nifti import DEFAULT_MAX_VOLUME_BYTES, hash_file
from mamamia_ingest._publish import publish, staging_dir
from mamamia_ingest._report_checks import clean_message, clean_problems, unknown_case_problems
from mamamia_ingest._reuse_plan import plan_reuse
from mamamia_ingest._tables_out import build_tables
from mamamia_ingest._volumes import (
    CaseJob,
    CaseResult,
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

__all__ = ["IngestError", "IngestReport", "ingest", "ingest_folder", "ingest_to"]


def _problem(
    severity: Severity, message: str, rule: str, case: str | None = None, file: str | None = None
) -> Problem:
    return Problem(severity=severity, case=case, file=file, rule=rule, message=message)


def _selected(case: str, patterns: Sequence[str] | None) -> bool:
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


def _init_pool_worker(owner: int) -> None:
    """The worker pool's initializer: watch the ingest ``owner``, then the usual set-up."""
    watch_owner(owner)
    init_worker()


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
    format_version: int = 2,
) -> IngestReport:
    """Ingest the raw MAMA-MIA folder ``raw`` into the catalog folder ``catalog``
    (or ``s3://bucket/prefix``: staged locally, then published; see docs/scaling.md).

    ``cases`` (glob patterns on patient_id, comma-separated) limits the catalog to those cases;
    ``chunks`` is the (z, y, x) chunk shape; ``format_version`` 2 (the default) writes sharded
    volumes, 1 a file per chunk (docs/format.md). ``executor="dask"`` runs one task per case on a
    Dask cluster (``scheduler``: its address; default a LocalCluster of ``jobs`` processes).
    Problems are returned in the report, never raised;
    ``IngestError`` is raised only when nothing can be ingested (no clinical table, bad args).
    """
    options = IngestOptions(
        jobs=jobs, cases=cases, tables_only=tables_only, strict=strict, chunks=chunks,
        max_volume_bytes=max_volume_bytes, progress=progress, executor=executor,
        scheduler=scheduler, format_version=format_version,
    )  # fmt: skip
    return ingest_to(raw, catalog, options)


def ingest_to(
    raw: str | os.PathLike[str], catalog: str | os.PathLike[str], options: IngestOptions
) -> IngestReport:
    """`ingest_folder` for a folder; for ``s3://`` a staging folder, then `publish`."""
    if not is_store_url(str(catalog)):
        return ingest_folder(raw, catalog, options)
    url = str(catalog)
    try:
        store = ObjectStore(url)
    except ValueError as exc:
        raise IngestError(str(exc)) from None
    staging = staging_dir(url)
    report = ingest_folder(raw, staging, options)
    report.catalog = url
    if report.stopped_early or not (staging / "catalog.json").is_file():
        return report
    report.published = publish(staging, store).manifest_written
    store.put("ingest-report.json", (report.model_dump_json(indent=2) + "\n").encode())
    return report


def ingest_folder(
    raw: str | os.PathLike[str], catalog: str | os.PathLike[str], options: IngestOptions
) -> IngestReport:
    """Ingest ``raw`` into the local catalog folder ``catalog`` as ``options`` say."""
    started = time.perf_counter()
    raw_path = Path(raw).resolve()
    cat_path = Path(catalog).resolve()
    if not raw_path.is_dir():
        raise IngestError(f"{raw}: the raw folder does not exist")
    created = not cat_path.exists()
    cat_path.mkdir(parents=True, exist_ok=True)
    try:
        with catalog_lock(cat_path):
            try:
                report = _run(raw_path, cat_path, options)
            except IngestError as exc:
                # The previous run's report must not stay behind looking current.
                roots = {str(raw_path.resolve()): "RAW", str(cat_path.resolve()): "CATALOG"}
                failed = IngestReport(
                    raw=str(raw),
                    catalog=str(catalog),
                    jobs=options.jobs,
                    fatal=clean_message(str(exc), roots),
                )
                write_atomic(
                    cat_path / "ingest-report.json", failed.model_dump_json(indent=2) + "\n"
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
        write_atomic(
            cat_path / "ingest-report.json", report.model_dump_json(indent=2) + "\n", fsync=True
        )
    return report


def _run(raw: Path, catalog: Path, options: IngestOptions) -> IngestReport:
    patterns, tables_only, strict = options.cases, options.tables_only, options.strict
    settings = options.volume_settings
    report = IngestReport(
        raw=str(raw), catalog=str(catalog), jobs=options.jobs, tables_only=tables_only
    )
    prev = read_previous(catalog)
    report.previous_catalog_version = prev.catalog_version
    layout = discover(raw)
    problems = report.problems
    problems.extend(p for p in layout.problems if p.case is None or _selected(p.case, patterns))
    if layout.clinical is None:
        raise IngestError(f"{raw}: no {CLINICAL_TABLE_NAMES[0]} here (the one required file)")

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
        built_now = _run_jobs(case_jobs, options, results, report)
        # In case order, whichever worker finished first.
        for job in case_jobs:
            if job.patient_id in results:
                problems.extend(results[job.patient_id].problems)
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
    cases = list(patterns) if patterns is not None else None
    byte_settings = settings.byte_settings() | {"tables_only": tables_only, "cases": cases}
    version = catalog_version_of(
        dataset_release=clinical.release,
        source_files=source_files,
        tables=refs,
        settings=byte_settings,
    )
    report.catalog_version = version
    if prev.catalog_version != version:
        manifest = CatalogManifest(
            format_version=settings.format_version,
            catalog_version=version,
            dataset_release=clinical.release,
            created_at=datetime.now(UTC),
            source_files=source_files,
            tables=refs,
        )
        write_atomic(catalog / "catalog.json", manifest_text(manifest), fsync=True)
        report.published = True
    # Keep what the new manifest and the one before it name (readers of either keep working).
    keep_tables = {ref.path for ref in refs.values()} | prev.table_paths
    keep_gens = {r.zarr_dir for r in results.values() if r.zarr_dir} | prev.generations
    collect_garbage(catalog, keep_gens, keep_tables)
    return report


def _read_optional_tables(layout: RawLayout, problems: list[Problem]) -> dict[str, Any]:
    """Splits, quality scores and per-case JSON, each optional (their columns are then null)."""
    out: dict[str, Any] = {"splits": None, "quality": None, "patient_info": {}}

    def unreadable(path: Path, message: str, case: str | None = None) -> None:
        problems.append(_problem(Severity.ERROR, message, "file", case=case, file=layout.rel(path)))

    if layout.splits is not None:
        rel = layout.rel(layout.splits)
        try:
            splits = read_splits(layout.splits, relpath=rel)
            problems.extend(splits.problems)
            out["splits"] = splits.splits
        except Exception as exc:
            unreadable(layout.splits, f"{rel}: cannot be read ({exc}); split is null")
    if layout.quality is not None:
        rel = layout.rel(layout.quality)
        try:
            quality = read_quality_scores(layout.quality, relpath=rel)
            problems.extend(quality.problems)
            out["quality"] = quality.rows
        except Exception as exc:
            unreadable(layout.quality, f"{rel}: cannot be read ({exc}); quality columns are null")
    for case, path in sorted(layout.patient_info.items()):
        try:
            info, info_problems = read_patient_info(path, relpath=layout.rel(path))
        except Exception as exc:
            unreadable(path, f"case {case}: {layout.rel(path)} cannot be read ({exc})", case)
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
    options: IngestOptions,
    results: dict[str, CaseResult],
    report: IngestReport,
) -> set[str]:
    """Run the case tasks; returns the generations this run built (not reused)."""
    jobs, strict, progress = options.jobs, options.strict, options.progress
    built: set[str] = set()
    plan, n_cases = plan_reuse(case_jobs), len(case_jobs)  # stat() only: no worker needed
    # The bar counts what is read (as the summary does): the files of the cases left to run.
    total = sum(sum(f.size for f in j.files) for j in plan.to_run)
    bar = progress_bar(
        progress and bool(plan.to_run),
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc="ingest",
    )

    def take(job: CaseJob, result: CaseResult) -> bool:
        results[job.patient_id] = result
        report.bytes_read += result.bytes_read
        if bar.total is not None and bar.n + result.bytes_read > bar.total:
            bar.total = bar.n + result.bytes_read  # hashed, then built: read twice
        bar.update(result.bytes_read)
        bar.set_postfix_str(f"{len(results)}/{n_cases} cases", refresh=False)
        if result.generation is None:
            report.failed += 1
        elif result.reused:
            report.reused += 1
        else:
            report.built += 1
            if result.zarr_dir:
                built.add(result.zarr_dir)
        return strict and any(p.severity is Severity.ERROR for p in result.problems)

    try:
        for job, result in plan.reused:
            if take(job, result):
                report.stopped_early = True
                return built
        case_jobs = plan.to_run
        if not case_jobs:
            return built
        if options.executor == "dask":
            from mamamia_ingest._dask_executor import run_on_dask

            if case_jobs:
                report.stopped_early = run_on_dask(
                    case_jobs, scheduler=options.scheduler, workers=jobs, take=take
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
                initializer=_init_pool_worker,  # workers exit when this process does
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
