"""Small raw MAMA-MIA folders built with SimpleITK, for the ingest tests (bad inputs need exact
control over every file). Rows of the clinical table come from the real table in tests/data
(CC BY-NC 4.0, see tests/data/ATTRIBUTION.md)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import SimpleITK as sitk

REAL_TABLE = Path(__file__).parent / "data" / "clinical_and_imaging_info.xlsx"
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
RAS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


@functools.cache
def real_rows() -> tuple[tuple[Any, ...], dict[str, tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(header, rows by patient_id, legend rows) of the real table."""
    wb = openpyxl.load_workbook(REAL_TABLE, read_only=True, data_only=True)
    rows = list(wb["dataset_info"].iter_rows(values_only=True))
    legend = list(wb["legend"].iter_rows(values_only=True))
    wb.close()
    return rows[0], {str(r[0]): r for r in rows[1:] if r[0]}, legend


def write_table(
    root: Path,
    ids: Iterable[str],
    overrides: Mapping[tuple[str, str], Any] | None = None,
    name: str = "clinical_and_imaging_info.xlsx",
) -> Path:
    """A clinical table holding the real rows of ``ids`` (``overrides[(id, column)]`` replaces
    a cell, e.g. to plant a bad value)."""
    header, by_id, legend = real_rows()
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "dataset_info"
    ws.append(list(header))
    for pid in ids:
        row = list(by_id[pid])
        for (oid, column), value in (overrides or {}).items():
            if oid == pid:
                row[list(header).index(column)] = value
        ws.append(row)
    lg = wb.create_sheet("legend")
    for r in legend:
        lg.append(list(r))
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    wb.save(path)
    return path


def write_volume(
    path: Path,
    array: np.ndarray[Any, Any],
    spacing: tuple[float, float, float] = (0.75, 0.7, 2.0),
    origin: tuple[float, float, float] = (-20.0, 10.0, 5.0),
    direction: tuple[float, ...] = IDENTITY,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    sitk.WriteImage(image, str(path), useCompression=str(path).endswith(".gz"))
    return path


def case_arrays(
    shape: tuple[int, int, int], n_phases: int, seed: int
) -> tuple[list[np.ndarray[Any, Any]], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Phases (int16, an enhancing block), an expert mask and a shifted automatic one."""
    rng = np.random.default_rng(seed)
    z, y, x = shape
    expert = np.zeros(shape, np.uint8)
    expert[z // 4 : z // 2 + 1, y // 3 : y // 2 + 2, x // 3 : x // 2 + 2] = 1
    automatic = np.roll(expert, 1, axis=0)
    phases = []
    for p in range(n_phases):
        a = rng.normal(100, 10, shape).astype(np.int16)
        a[expert == 1] += np.int16(40 * p)
        phases.append(a)
    return phases, expert, automatic


def write_case(
    root: Path,
    case: str,
    *,
    n_phases: int = 3,
    shape: tuple[int, int, int] = (10, 32, 28),
    spacing: tuple[float, float, float] = (0.75, 0.7, 2.0),
    origin: tuple[float, float, float] = (-20.0, 10.0, 5.0),
    direction: tuple[float, ...] = IDENTITY,
    lowercase: bool = False,
    expert: bool = True,
    automatic: bool = True,
    seed: int = 0,
) -> dict[str, Path]:
    """Write one case's phases and masks; returns {role: path}."""
    phases, em, am = case_arrays(shape, n_phases, seed)
    stem = case.lower() if lowercase else case
    geo = {"spacing": spacing, "origin": origin, "direction": direction}
    out: dict[str, Path] = {}
    for p, a in enumerate(phases):
        out[f"image:{p:04d}"] = write_volume(
            root / "images" / case / f"{stem}_{p:04d}.nii.gz", a, **geo
        )
    if expert:
        # Expert masks stay uppercase in real copies, even when the rest is lowercase.
        out["expert"] = write_volume(root / "segmentations/expert" / f"{case}.nii.gz", em, **geo)
    if automatic:
        out["automatic"] = write_volume(
            root / "segmentations/automatic" / f"{stem}.nii.gz", am, **geo
        )
    return out


def patch_header(path: Path, dims: tuple[int, ...]) -> None:
    """Rewrite the NIfTI-1 dim field of a .nii.gz (e.g. a negative or a huge dimension)."""
    raw = bytearray(gzip.decompress(path.read_bytes()))
    dim = [len(dims), *dims] + [1] * (7 - len(dims))
    raw[40:56] = struct.pack("<8h", *dim)
    path.write_bytes(gzip.compress(bytes(raw)))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``root`` (to prove nothing changed)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
