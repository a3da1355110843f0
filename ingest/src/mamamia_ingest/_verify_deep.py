"""``verify(catalog, deep=True, raw=...)``: the checks a valid crc32c cannot make.

A chunk re-encoded with a valid crc32c but other voxels decodes without complaint, and when the
volumes table's checksum was rewritten to match, the plain verify passes. The deep checks tie
the catalog back to what it was built from:

- every preview (level ``1``) equals its full-resolution array strided by 2, phase by phase;
- with the raw folder: every source file whose sha256 still matches the one recorded in the
  ``sources`` table is read again through the ingest's reader (the catalog's rule: SimpleITK's
  values), and its voxels' checksum must equal the catalog's.

Memory: one phase (and its preview) at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import zarr

from mamamia_ingest._features import checksum_algorithm, voxel_checksum
from mamamia_ingest._nifti import (
    DEFAULT_MAX_VOLUME_BYTES,
    NiftiError,
    PrivateDir,
    hash_file,
    load_volume,
    read_header_info,
)
from mamamia_schema import Problem, Severity

__all__ = ["deep_checks"]

Report = Callable[[Problem], None]


def _problem(severity: Severity, case: str, file: str, rule: str, message: str) -> Problem:
    return Problem(severity=severity, case=case, file=file, rule=rule, message=message)


def _open(root: Path, rel: str) -> zarr.Array[Any] | None:
    if not (root / rel).is_dir():
        return None
    try:
        return zarr.open_array(store=zarr.storage.LocalStore(root / rel, read_only=True), mode="r")
    except Exception:  # already reported by the plain checks
        return None


def _check_preview(root: Path, rel: str, case: str, add: Report) -> int:
    """Level 1 == level 0 [:, ::2, ::2, ::2]; returns the phases compared."""
    if not rel.endswith("/0"):
        return 0
    full, half = _open(root, rel), _open(root, rel[:-1] + "1")
    if full is None or half is None:
        return 0
    compared = 0
    for t in range(full.shape[0]):
        try:
            same = np.array_equal(half[t], np.asarray(full[t])[::2, ::2, ::2])
        except Exception:  # a chunk that does not decode: already an error of the plain checks
            continue
        compared += 1
        if not same:
            add(
                _problem(
                    Severity.ERROR,
                    case,
                    rel[:-1] + "1",
                    "preview_mismatch",
                    f"case {case}: {rel[:-1]}1[{t}] is not its full-resolution array strided "
                    "by 2 (a chunk re-encoded with other voxels)",
                )
            )
    return compared


def _role(row: Mapping[str, Any]) -> str:
    return f"image:{int(row['phase']):04d}" if row["kind"] == "image" else str(row["kind"])


def _check_source(
    raw: Path, row: Mapping[str, Any], source: Mapping[str, Any], private: PrivateDir, add: Report
) -> bool:
    """The source file's voxels (as ingest reads them) against the catalog's checksum."""
    case, rel = str(row["patient_id"]), str(source["path"])
    path = raw / rel
    if not path.is_file():
        add(
            _problem(
                Severity.WARNING,
                case,
                rel,
                "source_missing",
                f"case {case}: {rel} is not in the raw folder; not compared",
            )
        )
        return False
    if hash_file(path) != source["sha256"]:
        add(
            _problem(
                Severity.WARNING,
                case,
                rel,
                "source_changed",
                f"case {case}: {rel} no longer matches its recorded sha256; not compared",
            )
        )
        return False
    algorithm = checksum_algorithm(str(row["checksum"]))
    if algorithm is None:
        return False  # reported by the plain checks
    try:
        info = read_header_info(path, private, DEFAULT_MAX_VOLUME_BYTES)
        array = load_volume(path, info, private, DEFAULT_MAX_VOLUME_BYTES).array
    except NiftiError as exc:
        add(_problem(Severity.ERROR, case, rel, exc.rule, f"case {case}: {exc.message}"))
        return False
    stored = array.astype(np.dtype(str(row["dtype"])), copy=False)
    if voxel_checksum(stored, algorithm) != row["checksum"]:
        add(
            _problem(
                Severity.ERROR,
                case,
                str(row["zarr_path"]),
                "source_voxels",
                f"case {case}: {row['zarr_path']} ({_role(row)}) does not hold the voxels of "
                f"{rel} as SimpleITK reads them",
            )
        )
    return True


def deep_checks(
    root: Path,
    tables: Mapping[str, Any],
    rows_by_array: Mapping[str, list[dict[str, Any]]],
    raw: Path | None,
    add: Report,
) -> tuple[int, int]:
    """Run the deep checks; returns (preview phases compared, source files compared)."""
    previews = 0
    for rel, rows in sorted(rows_by_array.items()):
        previews += _check_preview(root, rel, str(rows[0]["patient_id"]), add)
    if raw is None:
        return previews, 0
    ref = tables.get("sources")
    if not ref:
        return previews, 0
    sources = {
        (str(s["patient_id"]), str(s["role"])): s
        for s in pq.read_table(root / str(ref["path"])).to_pylist()
    }
    compared = 0
    with PrivateDir() as private:
        for _rel, rows in sorted(rows_by_array.items()):
            for row in rows:
                source = sources.get((str(row["patient_id"]), _role(row)))
                if source is not None:
                    compared += _check_source(raw, row, source, private, add)
    return previews, compared
