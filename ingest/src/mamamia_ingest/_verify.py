"""``verify(catalog)``: every table the manifest names matches its hash, every array the volumes
table names exists and is finished, every chunk is present and decodes (crc32c), and every
volume's voxels match their checksum. Memory: one phase at a time.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import zarr
from pydantic import BaseModel, Field

from mamamia import CatalogFormatError
from mamamia.manifest import check_manifest
from mamamia_ingest._features import CHECKSUM_ALGORITHMS, checksum_algorithm, voxel_checksum
from mamamia_schema import Problem, Severity

__all__ = ["VerifyReport", "verify"]


class VerifyReport(BaseModel):
    """What ``verify`` checked and found."""

    catalog: str
    catalog_version: str | None = None
    tables_checked: int = 0
    volumes_checked: int = 0
    arrays_checked: int = 0
    chunks_checked: int = 0
    #: ``--deep``: preview phases compared with their full-resolution arrays, and source
    #: files (with ``--raw``) whose voxels were compared with the catalog's.
    deep: bool = False
    previews_checked: int = 0
    sources_checked: int = 0
    problems: list[Problem] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.severity is Severity.ERROR for p in self.problems)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> str:
        lines = [
            f"mamamia verify {self.catalog} (catalog_version {self.catalog_version})",
            f"  {self.tables_checked} tables, {self.volumes_checked} volumes, "
            f"{self.arrays_checked} arrays, {self.chunks_checked} chunks checked",
        ]
        if self.deep:
            lines.append(
                f"  deep: {self.previews_checked} preview phases, "
                f"{self.sources_checked} source files compared"
            )
        if self.ok:
            lines.append("  OK: every table, array, chunk and checksum matches")
        for p in self.problems:
            lines.append(f"  {p.severity.value}: {p.message}")
        return "\n".join(lines)


def _error(
    report: VerifyReport, message: str, rule: str, case: str | None = None, file: str | None = None
) -> None:
    report.problems.append(
        Problem(severity=Severity.ERROR, case=case, file=file, rule=rule, message=message)
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _chunk_files(array_dir: Path) -> int:
    count = 0
    c = array_dir / "c"
    for _root, _dirs, files in os.walk(c):
        count += sum(1 for f in files if ".partial" not in f)
    return count


def _check_array(report: VerifyReport, root: Path, rel: str, case: str) -> zarr.Array[Any] | None:
    """Open one array; check that every chunk file exists and that every chunk decodes."""
    try:
        arr = zarr.open_array(store=zarr.storage.LocalStore(root / rel, read_only=True), mode="r")
    except Exception as exc:
        _error(
            report,
            f"case {case}: {rel}: cannot open the array ({exc})",
            "missing_array",
            case=case,
            file=rel,
        )
        return None
    # Format 2: one file per shard, each holding many chunks.
    grid = arr.shards if arr.shards is not None else arr.chunks
    expected = math.prod(-(-n // c) for n, c in zip(arr.shape, grid, strict=True))
    present = _chunk_files(root / rel)
    if present != expected:
        _error(
            report,
            f"case {case}: {rel}: {present} of {expected} chunk files present",
            "missing_chunk",
            case=case,
            file=rel,
        )
    report.arrays_checked += 1
    return arr


def _decode_all(
    report: VerifyReport, arr: zarr.Array[Any], rel: str, case: str, algorithm: str | None
) -> dict[int, str]:
    """Decode the array phase by phase; returns the voxel checksum per leading index (none
    when ``algorithm`` is unknown: every chunk is still decoded)."""
    sums: dict[int, str] = {}
    for t in range(arr.shape[0]):
        try:
            data = arr[t]
        except Exception as exc:
            _error(
                report,
                f"case {case}: {rel}[{t}]: a chunk does not decode ({exc})",
                "corrupt_chunk",
                case=case,
                file=rel,
            )
            continue
        if algorithm is not None:
            sums[t] = voxel_checksum(np.asarray(data), algorithm)
    chunks_per_t = arr.nchunks // max(arr.shape[0], 1) if arr.shape[0] else 0
    report.chunks_checked += chunks_per_t * len(sums)
    return sums


def verify(
    catalog: str | os.PathLike[str],
    *,
    deep: bool = False,
    raw: str | os.PathLike[str] | None = None,
) -> VerifyReport:
    """Check a catalog folder end to end; problems are returned, never raised. ``deep`` adds
    the checks of ``_verify_deep`` (previews against full resolution; with ``raw``, every
    volume against its source file's voxels)."""
    root = Path(catalog)
    report = VerifyReport(catalog=str(catalog), deep=deep)
    manifest_path = root / "catalog.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _error(report, f"{manifest_path}: cannot read the manifest ({exc})", "manifest")
        return report
    if not isinstance(manifest, dict):
        _error(report, f"{manifest_path}: the manifest is not a JSON object", "manifest")
        return report
    # Read leniently on purpose: a manifest that fails its model is reported, and whatever
    # tables it still names are checked too, so one run shows all the damage.
    try:
        check_manifest(manifest, str(root))
    except CatalogFormatError as exc:
        _error(report, str(exc), "manifest", file="catalog.json")
    version = manifest.get("catalog_version")
    report.catalog_version = version if isinstance(version, str) else None
    tables = manifest.get("tables")
    tables = tables if isinstance(tables, dict) else {}
    good: set[str] = set()
    for name, ref in sorted(tables.items()):
        if not isinstance(ref, dict):
            continue  # reported above, by the manifest check
        path = root / str(ref.get("path"))
        if not path.is_file():
            _error(
                report,
                f"table {name}: {ref.get('path')} is missing",
                "missing_table",
                file=str(ref.get("path")),
            )
            continue
        if _sha256(path) != ref.get("sha256"):
            _error(
                report,
                f"table {name}: {ref.get('path')} does not match its sha256",
                "table_checksum",
                file=str(ref.get("path")),
            )
            continue
        rows = pq.read_metadata(path).num_rows
        if rows != ref.get("rows"):
            _error(
                report,
                f"table {name}: {rows} rows, the manifest says {ref.get('rows')}",
                "table_rows",
                file=str(ref.get("path")),
            )
        report.tables_checked += 1
        good.add(name)
    if "volumes" not in good:
        return report  # its problem is reported above; its rows cannot be trusted
    rows_by_array: dict[str, list[dict[str, Any]]] = {}
    for row in pq.read_table(root / str(tables["volumes"]["path"])).to_pylist():
        rows_by_array.setdefault(str(row["zarr_path"]), []).append(row)
    checked_generations: set[str] = set()
    for rel, rows in sorted(rows_by_array.items()):
        case = str(rows[0]["patient_id"])
        gen = "/".join(rel.split("/")[:3])
        if gen not in checked_generations:
            checked_generations.add(gen)
            _check_generation(report, root, gen, case)
        arr = _check_array(report, root, rel, case)
        if arr is None:
            continue
        algorithm = checksum_algorithm(str(rows[0]["checksum"]))
        if algorithm is None:
            _error(
                report,
                f"case {case}: {rel}: unknown checksum {rows[0]['checksum']!r} "
                f"(known: {', '.join(CHECKSUM_ALGORITHMS)})",
                "checksum",
                case=case,
                file=rel,
            )
        sums = _decode_all(report, arr, rel, case, algorithm)
        for row in rows:
            index = int(row["phase"]) if row["phase"] is not None else 0
            report.volumes_checked += 1
            want_shape = tuple(row["shape"])
            if tuple(arr.shape[1:]) != want_shape:
                _error(
                    report,
                    f"case {case}: {rel}: shape {arr.shape[1:]} but the table says {want_shape}",
                    "shape",
                    case=case,
                    file=rel,
                )
                continue
            if index in sums and sums[index] != row["checksum"]:
                what = f"phase {index}" if row["phase"] is not None else str(row["kind"])
                _error(
                    report,
                    f"case {case}: {rel} ({what}): voxels do not match the checksum",
                    "checksum",
                    case=case,
                    file=rel,
                )
        # The preview level shares the image's fate: it must decode too.
        level1 = rel[: -len("/0")] + "/1" if rel.endswith("/0") else None
        if level1 is not None and (root / level1).is_dir():
            arr1 = _check_array(report, root, level1, case)
            if arr1 is not None:
                _decode_all(report, arr1, level1, case, None)  # decoded, no checksum
    if deep:
        from mamamia_ingest._verify_deep import deep_checks

        report.previews_checked, report.sources_checked = deep_checks(
            root,
            {name: tables[name] for name in good},
            rows_by_array,
            None if raw is None else Path(raw),
            report.problems.append,
        )
    return report


def _check_generation(report: VerifyReport, root: Path, gen: str, case: str) -> None:
    try:
        doc = json.loads((root / gen / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _error(
            report,
            f"case {case}: {gen} is missing or unreadable ({exc})",
            "missing_array",
            case=case,
            file=gen,
        )
        return
    block = doc.get("attributes", {}).get("mamamia", {})
    if block.get("complete") is not True:
        _error(
            report,
            f"case {case}: {gen} has no completion marker (unfinished write)",
            "incomplete",
            case=case,
            file=gen,
        )
