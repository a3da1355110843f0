"""Writing catalog volumes as NIfTI files: one file per job, atomic, skipped when present.

Every exporter (nnU-Net, the challenge layout, the MONAI datalist) plans a list of `FileJob`s and
hands it to `write_files`, so resumption, parallelism, progress and the geometry rule live here
once. A file holds exactly one phase (or one mask, or the subtraction): a worker holds at most
two phases of one case in memory, whatever the cohort's size.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mamamia._atomic import atomic_write, write_atomic
from mamamia._errors import InvalidRequest, MamamiaError, NotFoundError

if TYPE_CHECKING:
    from mamamia._case import Case
    from mamamia._catalog import Catalog

__all__ = [
    "MARKER",
    "SUBTRACTION",
    "ExportReport",
    "FileJob",
    "check_phases",
    "claim_folder",
    "require_cases",
    "sitk_module",
    "write_files",
]

#: Written first in an export folder: what it holds, so a rerun only ever finishes the same one.
MARKER = ".mamamia-export.json"

#: The ``phase`` of a job that writes phase 1 minus phase 0 (float32).
SUBTRACTION = -1


@dataclass(frozen=True)
class FileJob:
    """One NIfTI file to write: a phase (``SUBTRACTION`` for 1 - 0) or a mask of one case."""

    patient_id: str
    kind: str  # "image", "expert" or "automatic"
    phase: int | None
    target: Path


@dataclass(frozen=True)
class ExportReport:
    """What an export did: the folder, files written and skipped (already there), voxel bytes."""

    folder: Path
    written: int
    skipped: int
    voxel_bytes: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        """Voxel megabytes written per second (the files skipped count for nothing)."""
        return self.voxel_bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


def sitk_module() -> Any:
    """SimpleITK, or an install hint: it writes the files with the catalog's exact geometry."""
    try:
        import SimpleITK as sitk
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "exporting NIfTI needs SimpleITK: pip install 'mamamia[sitk]' (or 'mamamia[nnunet]')"
        ) from exc
    return sitk


def check_phases(case: Case, phases: Sequence[int], subtraction: bool) -> None:
    """Every phase asked for (and 0, 1 for the subtraction) exists in ``case``."""
    count = case.image.shape[0]
    needed = sorted(set(phases) | ({0, 1} if subtraction else set()))
    missing = [p for p in needed if p >= count]
    if missing:
        raise InvalidRequest(
            f"case {case.patient_id} has {count} phases (0..{count - 1}); the export asks for "
            f"phase {missing[0]}" + (" (the subtraction needs 0 and 1)" if subtraction else "")
        )


def _voxels(case: Case, job: FileJob) -> tuple[np.ndarray[Any, Any], Any]:
    if job.kind == "image":
        image = case.image
        if job.phase == SUBTRACTION:
            data = image[1].astype(np.float32) - image[0].astype(np.float32)
        else:
            assert job.phase is not None
            data = image[job.phase]
        return data, image
    mask = case.mask(job.kind)
    return mask.to_numpy(), mask


def write_one(catalog: Catalog, job: FileJob) -> int:
    """Write one job's file (atomically); the voxel bytes written, 0 when it was already there."""
    if job.target.exists():
        return 0
    sitk = sitk_module()
    case = catalog.case(job.patient_id)
    data, volume = _voxels(case, job)
    image = sitk.GetImageFromArray(np.ascontiguousarray(data))
    image.SetSpacing(volume.spacing_xyz)
    image.SetOrigin(volume.origin_xyz)
    image.SetDirection(volume.direction)
    with atomic_write(job.target) as tmp:
        sitk.WriteImage(image, str(tmp), True)
    return int(data.nbytes)


def write_files(
    catalog: Catalog,
    jobs: Sequence[FileJob],
    folder: Path,
    *,
    threads: int = 1,
    progress: bool = True,
    desc: str = "export",
) -> ExportReport:
    """Write ``jobs`` on ``threads`` threads (compression and decoding release the GIL).

    A job whose file exists is skipped: files only appear complete (atomic rename), so a rerun
    after a crash or Ctrl-C finishes the rest. The first error stops the export and names the
    case and file.
    """
    if threads < 1:
        raise InvalidRequest(f"jobs must be an int >= 1, not {threads!r}")
    from tqdm.auto import tqdm

    started = time.perf_counter()
    lock = threading.Lock()
    totals = {"written": 0, "skipped": 0, "bytes": 0}

    def run(job: FileJob) -> None:
        try:
            nbytes = write_one(catalog, job)
        except (MamamiaError, ImportError):
            raise
        except Exception as exc:
            raise MamamiaError(
                f"case {job.patient_id}: cannot write {job.target.name}: {exc}"
            ) from exc
        with lock:
            if nbytes:
                totals["written"] += 1
                totals["bytes"] += nbytes
            else:
                totals["skipped"] += 1
            bar.update(1)

    with tqdm(total=len(jobs), desc=desc, unit="file", disable=not progress) as bar:
        _run_all(run, jobs, threads)
    return ExportReport(
        folder=folder,
        written=totals["written"],
        skipped=totals["skipped"],
        voxel_bytes=totals["bytes"],
        seconds=time.perf_counter() - started,
    )


def _run_all(run: Callable[[FileJob], None], jobs: Sequence[FileJob], threads: int) -> None:
    if threads == 1:
        for job in jobs:
            run(job)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mamamia-export") as pool:
        # At most 2 * threads jobs in flight: memory stays a few volumes, not the cohort.
        pending: list[Any] = []
        for job in jobs:
            pending.append(pool.submit(run, job))
            if len(pending) >= 2 * threads:
                pending.pop(0).result()
        for future in pending:
            future.result()


def require_cases(catalog: Catalog, case_ids: Sequence[str]) -> None:
    """Every id is a case of ``catalog`` (NotFoundError names the missing ones)."""
    if not case_ids:
        raise InvalidRequest("the cohort is empty: nothing to export")
    found = catalog.sql(
        "SELECT patient_id FROM cases WHERE list_contains($ids, patient_id)", ids=list(case_ids)
    )
    known = {str(v) for v in found.column("patient_id").to_pylist()}
    unknown = [pid for pid in case_ids if pid not in known]
    if unknown:
        raise NotFoundError(
            f"{len(unknown)} cases are not in catalog {catalog.version}: {unknown[:10]}"
        )


def claim_folder(folder: Path, provenance: dict[str, Any]) -> None:
    """Record what ``folder`` will hold, or check that it already holds the same export.

    A rerun finishes an interrupted export; it never mixes catalogs, cohorts or channels.
    """
    marker = folder / MARKER
    if marker.is_file():
        try:
            before = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MamamiaError(f"{marker}: unreadable ({exc}); remove the folder") from exc
        for key, value in provenance.items():
            if not isinstance(before, dict) or before.get(key) != value:
                was = before.get(key) if isinstance(before, dict) else None
                raise InvalidRequest(
                    f"{folder} holds another export ({key} was {was!r}, now {value!r}); "
                    "write to a new folder or remove it"
                )
        return
    if folder.exists() and any(folder.iterdir()):
        raise InvalidRequest(f"{folder} exists and is not a mamamia export; choose a new folder")
    write_atomic(marker, json.dumps(provenance, indent=2, default=str) + "\n")
