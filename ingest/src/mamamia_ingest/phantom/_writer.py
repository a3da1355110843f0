"""``write_phantom``: a raw MAMA-MIA dataset with made-up voxels and a real or synthetic table."""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from mamamia import atomic_write, write_atomic
from mamamia.progress import progress_bar
from mamamia.raw import image_name, mask_name, patient_info_name
from mamamia_schema import ClinicalRecord, VolumeKind

from ._layout import (
    CLINICAL_XLSX,
    MANIFEST,
    MARKER,
    QUALITY_CSV,
    SPLITS_CSV,
    clean_stale,
    patient_info,
    write_clinical_xlsx,
    write_json,
    write_manifests,
    write_quality_scores,
    write_splits,
)
from ._phantom_records import read_records
from ._phantom_volume import CaseModel, build_case, mask_image, phase_image, write_image
from ._source import builtin_table, convert_release, read_source_table, select_rows
from ._spec import CaseSpec, MissingValueError, PhantomError, spec_from_record

__all__ = ["DEFAULT_CASES", "PhantomCase", "PhantomReport", "write_phantom"]

#: Cases written when neither ``cases`` nor ``ids`` is given.
DEFAULT_CASES = 8
# Phantoms smaller than this (voxels, phases counted twice: under a second of work) are written
# in-process, since starting a worker pool costs more than it saves.
_POOL_MIN_VOXELS = 8_000_000
# Share of cases put in the test split (the real split is about 1206 / 300).
_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class PhantomCase:
    """One written case: its geometry (SimpleITK conventions, see docs/design.md) and files."""

    patient_id: str
    dataset: str
    view: str
    orientation: str
    size_xyz: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]
    direction: tuple[float, ...]
    num_phases: int
    phase_times_s: tuple[float, ...]
    tumor_bbox_min_zyx: tuple[int, int, int]
    tumor_bbox_max_zyx: tuple[int, int, int]
    dice: float
    split: str
    images: tuple[str, ...]
    expert: str
    automatic: str
    patient_info: str | None

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return (self.size_xyz[2], self.size_xyz[1], self.size_xyz[0])


@dataclass(frozen=True)
class PhantomReport:
    """What ``write_phantom`` wrote. ``files`` are paths relative to ``root`` (posix)."""

    root: Path
    release: int
    scale: float
    seed: int
    table: str
    lowercase_names: bool
    cases: tuple[PhantomCase, ...]
    files: tuple[str, ...]
    bytes_written: int
    seconds: float

    def summary(self) -> str:
        """A few human lines: where the dataset is and what it holds."""
        by_dataset = Counter(c.dataset for c in self.cases)
        by_view = Counter(c.view for c in self.cases)
        images = sum(len(c.images) for c in self.cases)
        train = sum(c.split == "train" for c in self.cases)
        manifests = sum(f.endswith(MANIFEST) for f in self.files)
        collections = ", ".join(f"{k} {v}" for k, v in sorted(by_dataset.items()))
        views = ", ".join(f"{k} {v}" for k, v in sorted(by_view.items()))
        lines = [
            f"Wrote a MAMA-MIA phantom (release {self.release}, scale {self.scale:g}, "
            f"seed {self.seed}) to {self.root}",
            f"  {len(self.cases)} cases: {collections} ({views}); table: {self.table}",
            f"  images/<CASE>/: {images} phase files; segmentations/expert/ and "
            f"segmentations/automatic/: {len(self.cases)} masks each",
            f"  {CLINICAL_XLSX} (dataset_info: {len(self.cases)} rows, legend), {SPLITS_CSV} "
            f"({train} train / {len(self.cases) - train} test), {QUALITY_CSV}",
        ]
        if self.release == 2:
            lines.append(f"  patient_info_files/: {len(self.cases)} JSON files")
        lines.append(
            f"  {manifests} {MANIFEST} files; {self.bytes_written / 1e6:.1f} MB in "
            f"{self.seconds:.1f} s"
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class _Task:
    root: Path
    rel: str
    spec: CaseSpec
    seed: int
    kind: str  # image | expert | automatic
    phase: int

    @property
    def voxels(self) -> int:
        x, y, z = self.spec.size_xyz
        return x * y * z * (2 if self.kind == "image" else 1)


@functools.lru_cache(maxsize=2)  # in-process runs write a case's files one after the other
def _model(spec: CaseSpec, seed: int) -> CaseModel:
    return build_case(spec, seed)


def _run_task(task: _Task) -> tuple[str, int]:
    # Rebuilt in the worker: a model is cheap and far smaller to ship than to pickle.
    model = _model(task.spec, task.seed)
    image = phase_image(model, task.phase) if task.kind == "image" else mask_image(model, task.kind)
    return task.rel, write_image(image, task.root / task.rel)


def _default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _pool_context() -> multiprocessing.context.BaseContext:
    """forkserver where there is one: workers start from a clean process that has imported the
    phantom code once (no inherited threads, no per-worker import cost); spawn elsewhere."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def _run_tasks(tasks: list[_Task], jobs: int, progress: bool) -> dict[str, int]:
    sizes: dict[str, int] = {}
    with progress_bar(progress, total=len(tasks), desc="phantom", unit="file") as bar:
        voxels = sum(t.voxels for t in tasks)
        # A worker pool costs a second or more to start; small phantoms are faster in-process.
        if jobs <= 1 or len(tasks) <= 1 or voxels < _POOL_MIN_VOXELS:
            for task in tasks:
                rel, size = _run_task(task)
                sizes[rel] = size
                bar.update(1)
            return sizes
        context = _pool_context()
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context) as pool:
            pending: set[Future[tuple[str, int]]] = {pool.submit(_run_task, t) for t in tasks}
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    error = future.exception()
                    if error is not None:
                        for other in pending:
                            other.cancel()
                        raise error
                    rel, size = future.result()
                    sizes[rel] = size
                    bar.update(1)
    return sizes


@dataclass(frozen=True)
class _Facts:
    """What the parent keeps of a case model (its arrays are dropped: 1506 full-size cases
    would otherwise hold hundreds of MB of outlines and boxes)."""

    spec: CaseSpec
    origin_xyz: tuple[float, float, float]
    tumour_bbox_zyx: tuple[tuple[int, int, int], tuple[int, int, int]]
    dice: float


def _facts(model: CaseModel) -> _Facts:
    return _Facts(model.spec, model.origin_xyz, model.tumour_bbox_zyx, model.dice)


def _splits(models: Sequence[_Facts], seed: int) -> dict[str, str]:
    splits = {}
    for m in models:
        pid = m.spec.patient_id
        draw = random.Random(f"mamamia-phantom-split-{seed}-{pid}").random()
        splits[pid] = "test" if draw < _TEST_FRACTION else "train"
    ids = list(splits)
    # Small phantoms still get both splits, so split-aware code has something to find.
    if len(ids) >= 2 and "test" not in splits.values():
        splits[ids[-1]] = "test"
    if len(ids) >= 2 and "train" not in splits.values():
        splits[ids[0]] = "train"
    return splits


_GRADES = ("Good", "Acceptable", "Poor")


def _quality(model: _Facts, seed: int) -> tuple[str, str]:
    dice = model.dice
    grade = 0 if dice >= 0.8 else 1 if dice >= 0.65 else 2
    rng = random.Random(f"mamamia-phantom-qs-{seed}-{model.spec.patient_id}")
    second = grade
    if rng.random() < 0.25:  # the two experts disagree by one grade now and then
        second = min(2, max(0, grade + rng.choice((-1, 1))))
    return _GRADES[grade], _GRADES[second]


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise PhantomError(f"OUT {out}: exists and is not a folder")
    if out.is_dir() and not (out / MARKER).is_file() and any(out.iterdir()):
        raise PhantomError(
            f"OUT {out}: the folder is not empty and was not written by mamamia phantom "
            f"(no {MARKER}); choose a new or empty folder"
        )


def _parse_ids(ids: str | Sequence[str] | None) -> list[str] | None:
    if ids is None:
        return None
    parts = [ids] if isinstance(ids, str) else list(ids)
    return [p.strip() for part in parts for p in part.split(",") if p.strip()]


def write_phantom(
    out: str | os.PathLike[str],
    *,
    cases: int | None = None,
    ids: str | Sequence[str] | None = None,
    scale: float = 1.0,
    seed: int = 0,
    table: str | os.PathLike[str] | None = None,
    release: int | None = None,
    lowercase_names: bool = False,
    jobs: int | None = None,
    progress: bool = True,
) -> PhantomReport:
    """Write a raw MAMA-MIA dataset (the layout of docs/dataset.md) with phantom voxels into ``out``.

    ``table``: a clinical_and_imaging_info.xlsx (or CSV) whose rows give each case's geometry;
    None uses the built-in synthetic table. ``ids``: glob patterns on patient_id (a list, or one
    comma-separated string); ``cases``: the first N (matching) rows; neither: the first
    ``DEFAULT_CASES``. ``release``: 1 or 2 (default: the table's own release; 1 for the built-in
    table). ``scale`` resamples every axis to ``max(1, round(n * scale))`` voxels keeping the
    physical extent. Everything is deterministic for ``seed``. ``jobs``: worker processes
    (default: the usable cores). Rerunning into a folder this function wrote replaces its
    contents consistently; any other non-empty folder is refused.
    """
    started = time.perf_counter()
    if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
        raise PhantomError(f"--scale {scale!r}: must be a positive number")
    if jobs is not None and jobs < 1:
        raise PhantomError(f"--jobs {jobs}: must be at least 1")
    patterns = _parse_ids(ids)
    if cases is None and patterns is None:
        cases = DEFAULT_CASES
    root = Path(out)
    _check_out(root)

    if table is not None:
        source = read_source_table(Path(table))
        target = release if release is not None else source.release
        chosen = convert_release(select_rows(source, cases, patterns), target, seed)
    else:
        source = builtin_table(seed, cases, patterns)
        target = release if release is not None else 1
        chosen = convert_release(source, target, seed)

    root.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, int] = {}
    with atomic_write(root / CLINICAL_XLSX) as xlsx_tmp:
        sizes[CLINICAL_XLSX] = write_clinical_xlsx(xlsx_tmp, chosen, target)
        # Geometry comes from the table as the sdk reads it back, so what the files hold and
        # what the catalog will say about them cannot drift apart.
        records = read_records(xlsx_tmp, chosen)
        rows = {chosen.patient_id(r): dict(zip(chosen.header, r, strict=True)) for r in chosen.rows}
        specs = [_spec(records[pid], rows[pid], float(scale), chosen.name) for pid in rows]
        models = [_facts(build_case(spec, seed)) for spec in specs]
        # Marked before any volume is written: a run killed half-way leaves a folder that the
        # next run may clean and overwrite, and "complete": false says it is unfinished.
        _write_marker(root, source.name, target, scale, seed, lowercase_names, list(rows), False)

        tasks: list[_Task] = []
        for spec in specs:
            pid = spec.patient_id
            for phase in range(spec.num_phases):
                tasks.append(
                    _Task(
                        root,
                        image_name(pid, phase, lowercase=lowercase_names),
                        spec,
                        seed,
                        "image",
                        phase,
                    )
                )
            tasks.append(_Task(root, mask_name(VolumeKind.EXPERT, pid), spec, seed, "expert", 0))
            tasks.append(
                _Task(
                    root,
                    mask_name(VolumeKind.AUTOMATIC, pid, lowercase=lowercase_names),
                    spec,
                    seed,
                    "automatic",
                    0,
                )
            )
        tasks.sort(key=lambda t: -t.voxels)  # largest first keeps the workers evenly busy
        sizes.update(_run_tasks(tasks, jobs or _default_jobs(), progress))

        splits = _splits(models, seed)
        quality = []
        for m in models:
            q1, q2 = _quality(m, seed)
            quality.append((m.spec.patient_id, q1, q2))
        sizes[SPLITS_CSV] = write_splits(root / SPLITS_CSV, splits)
        sizes[QUALITY_CSV] = write_quality_scores(root / QUALITY_CSV, quality)
        if target == 2:
            for m in models:
                pid = m.spec.patient_id
                rel = patient_info_name(pid, lowercase=lowercase_names)
                sizes[rel] = write_json(root / rel, patient_info(pid, rows[pid], _breast_box(m)))
    # (leaving the block moved the xlsx into place)

    data_files = sorted(sizes)
    manifest_paths = {
        MANIFEST if folder == "." else f"{folder}/{MANIFEST}"
        for folder in {".", *(p for f in data_files for p in _parents(f))}
    }
    clean_stale(root, set(data_files) | manifest_paths)
    manifests = write_manifests(root, data_files)
    report_cases = tuple(
        _report_case(m, splits[m.spec.patient_id], lowercase_names, target) for m in models
    )
    seconds = time.perf_counter() - started
    _write_marker(root, source.name, target, scale, seed, lowercase_names, list(rows), True)
    return PhantomReport(
        root=root.resolve(),
        release=target,
        scale=float(scale),
        seed=seed,
        table=source.name,
        lowercase_names=lowercase_names,
        cases=report_cases,
        files=tuple(sorted([*data_files, *manifests])),
        bytes_written=sum(sizes.values()),
        seconds=seconds,
    )


def _spec(record: ClinicalRecord, raw: dict[str, object], scale: float, table: str) -> CaseSpec:
    try:
        return spec_from_record(record, scale)
    except MissingValueError as exc:
        cell = raw.get(exc.column or "")
        if cell is None or str(cell).strip() == "":
            raise
        # The cell is not empty: the table reader rejected its value and nulled it.
        raise PhantomError(
            f"case {exc.case}: column {exc.column} = {cell!r} in {table} is not a valid value "
            f"(the table reader nulls it); the phantom needs it",
            case=exc.case,
            column=exc.column,
        ) from exc


def _write_marker(
    root: Path,
    table: str,
    release: int,
    scale: float,
    seed: int,
    lowercase: bool,
    cases: list[str],
    complete: bool,
) -> None:
    marker = {
        "written_by": "mamamia phantom",
        "complete": complete,
        "release": release,
        "scale": scale,
        "seed": seed,
        "table": table,
        "lowercase_names": lowercase,
        "cases": cases,
    }
    write_atomic(root / MARKER, json.dumps(marker, indent=2) + "\n")


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


# Release 2's breast_coordinates is a box around the breast that holds the lesion: the tumour
# box grown by this many millimetres on every side, clipped to the volume.
_BREAST_MARGIN_MM = 40.0


def _breast_box(model: _Facts) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    lo, hi = model.tumour_bbox_zyx
    spacing_zyx = model.spec.spacing_xyz[::-1]
    shape = model.spec.shape_zyx
    grow = [max(1, round(_BREAST_MARGIN_MM / s)) for s in spacing_zyx]
    new_lo = tuple(max(0, a - g) for a, g in zip(lo, grow, strict=True))
    new_hi = tuple(min(n, b + g) for b, g, n in zip(hi, grow, shape, strict=True))
    return (new_lo[0], new_lo[1], new_lo[2]), (new_hi[0], new_hi[1], new_hi[2])


def _report_case(model: _Facts, split: str, lowercase: bool, release: int) -> PhantomCase:
    spec = model.spec
    pid = spec.patient_id
    lo, hi = model.tumour_bbox_zyx
    return PhantomCase(
        patient_id=pid,
        dataset=spec.dataset,
        view=spec.view,
        orientation=spec.orientation,
        size_xyz=spec.size_xyz,
        spacing_xyz=spec.spacing_xyz,
        origin_xyz=model.origin_xyz,
        direction=spec.direction,
        num_phases=spec.num_phases,
        phase_times_s=spec.times_s,
        tumor_bbox_min_zyx=lo,
        tumor_bbox_max_zyx=hi,
        dice=model.dice,
        split=split,
        images=tuple(image_name(pid, p, lowercase=lowercase) for p in range(spec.num_phases)),
        expert=mask_name(VolumeKind.EXPERT, pid),
        automatic=mask_name(VolumeKind.AUTOMATIC, pid, lowercase=lowercase),
        patient_info=patient_info_name(pid, lowercase=lowercase) if release == 2 else None,
    )
