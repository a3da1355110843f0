"""The non-image files of a phantom dataset, in the MAMA-MIA layout (names from `mamamia.raw`)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import mimetypes
import os
import re
import shutil
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath

import openpyxl

from mamamia import ATOMIC_TEMP_PREFIX, atomic_write, write_atomic
from mamamia.raw import (
    CLINICAL_TABLE_NAMES,
    DATA_SHEET,
    IMAGES_DIR,
    LEGEND_SHEET,
    PATIENT_INFO_DIR,
    QUALITY_SCORES_NAMES,
    SEGMENTATIONS_DIR,
    SPLITS_NAME,
    SYNAPSE_MANIFEST,
)

from ._phantom_columns import builtin_legend
from ._source import SourceTable, to_cell

__all__ = [
    "CLINICAL_XLSX",
    "MANIFEST",
    "MARKER",
    "QUALITY_CSV",
    "SPLITS_CSV",
    "clean_stale",
    "patient_info",
    "write_clinical_xlsx",
    "write_manifests",
    "write_quality_scores",
    "write_splits",
]

# The names the phantom writes: the first release's own spellings.
CLINICAL_XLSX = CLINICAL_TABLE_NAMES[0]
SPLITS_CSV = SPLITS_NAME
QUALITY_CSV = QUALITY_SCORES_NAMES[0]
MANIFEST = SYNAPSE_MANIFEST
#: A hidden file that marks a folder as written by ``mamamia phantom`` (so a rerun may clean it).
MARKER = ".mamamia-phantom.json"

#: The dataset's Synapse project; the phantom's folders and files get made-up ids after it.
SYNAPSE_PROJECT = "syn60868042"
_MANIFEST_COLUMNS = (
    "path",
    "parent",
    "name",
    "id",
    "synapseStore",
    "contentType",
    "used",
    "executed",
    "activityName",
    "activityDescription",
)


def write_clinical_xlsx(path: Path, table: SourceTable, release: int) -> int:
    """``dataset_info`` (the table's header and raw cells) and ``legend`` sheets, atomically."""
    wb = openpyxl.Workbook(write_only=True)
    info = wb.create_sheet(DATA_SHEET)
    info.append(list(table.header))
    for row in table.rows:
        info.append([to_cell(c) for c in row])
    legend = wb.create_sheet(LEGEND_SHEET)
    for lrow in table.legend or tuple(builtin_legend(release)):
        legend.append([to_cell(c) for c in lrow])
    buffer = io.BytesIO()
    wb.save(buffer)
    with atomic_write(path) as tmp:
        tmp.write_bytes(_reproducible_zip(buffer.getvalue()))
    return os.path.getsize(path)


_FIXED_TIME = "2024-01-01T00:00:00Z"


def _reproducible_zip(data: bytes) -> bytes:
    """The same workbook with fixed zip-entry times and document dates, so that equal tables
    give byte-equal files (openpyxl stamps the save time in both)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:)",
                    rb"\g<1>" + _FIXED_TIME.encode() + rb"\g<3>",
                    content,
                )
            fixed = zipfile.ZipInfo(info.filename, date_time=(2024, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            dst.writestr(fixed, content)
    return out.getvalue()


def write_splits(path: Path, splits: Mapping[str, str]) -> int:
    """Two columns ``train_split,test_split``; the shorter one padded with blanks."""
    train = [c for c, s in splits.items() if s == "train"]
    test = [c for c, s in splits.items() if s == "test"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["train_split", "test_split"])
    for a, b in itertools.zip_longest(train, test, fillvalue=""):
        writer.writerow([a, b])
    return write_atomic(path, out.getvalue())


def write_quality_scores(path: Path, rows: Sequence[tuple[str, str, str]]) -> int:
    """``patient_id, expert_1_qs, expert_2_qs``: the columns the release's table has.

    The automatic mask's Dice is not written: the catalog computes ``auto_expert_dice`` from the
    masks themselves, and an extra column here would be reported as unknown on every ingest.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["patient_id", "expert_1_qs", "expert_2_qs"])
    for case, q1, q2 in rows:
        writer.writerow([case, q1, q2])
    return write_atomic(path, out.getvalue())


def _plain(value: object) -> object:
    """A JSON value: stripped strings, integral floats as ints, empty as null."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def _text(value: object) -> str | None:
    """A JSON string field: numbers too (NACT's site is a number in the table)."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() or None


def patient_info(
    case: str,
    row: Mapping[str, object],
    box_zyx: tuple[tuple[int, int, int], tuple[int, int, int]],
) -> dict[str, object]:
    """The release-2 per-case JSON.

    ``breast_coordinates`` follows the official sample code: ``x``/``y``/``z`` name the axes of
    the SimpleITK array in numpy order, so ``x`` is array axis 0 (SimpleITK z) and ``z`` is array
    axis 2 (SimpleITK x); ``*_min`` inclusive, ``*_max`` exclusive (slice bounds).
    """
    (z0, y0, x0), (z1, y1, x1) = box_zyx
    bilateral = row.get("bilateral_mri")
    return {
        "patient_id": case,
        "clinical_data": {
            "age": _plain(row.get("age")),
            "menopausal_status": _text(row.get("menopause")),
            "breast_density": _text(row.get("breast_density")),
        },
        "primary_lesion": {
            "breast_coordinates": {
                "x_min": z0,
                "x_max": z1,
                "y_min": y0,
                "y_max": y1,
                "z_min": x0,
                "z_max": x1,
            },
            "pcr": _plain(row.get("pcr")),
            "tumor_subtype": _text(row.get("tumor_subtype")),
        },
        "imaging_data": {
            "bilateral": None if bilateral is None else bool(bilateral),
            "dataset": _text(row.get("dataset")),
            "site": _text(row.get("site")),
            "scanner_manufacturer": _text(row.get("manufacturer")),
            "scanner_model": _text(row.get("scanner_model")),
            "field_strength": _plain(row.get("field_strength")),
            "echo_time": _plain(row.get("echo_time")),
            "repetition_time": _plain(row.get("repetition_time")),
        },
    }


def write_json(path: Path, data: Mapping[str, object]) -> int:
    return write_atomic(path, json.dumps(data, indent=4) + "\n")


def _content_type(name: str) -> str:
    # What synapseclient records for an upload: mimetypes' guess, else octet-stream.
    guess, _ = mimetypes.guess_type(name, strict=False)
    return guess or "application/octet-stream"


def write_manifests(root: Path, files: Iterable[str]) -> list[str]:
    """A ``SYNAPSE_METADATA_MANIFEST.tsv`` in every folder, as ``synapseutils.syncFromSynapse``
    leaves them: each lists every file at or below its folder, tab separated, unquoted."""
    paths = sorted(PurePosixPath(f) for f in files)
    folders = sorted({PurePosixPath(".")} | {p for f in paths for p in f.parents})
    # Made-up but stable Synapse ids: the project for the root, then numbered in sorted order.
    ids: dict[PurePosixPath, str] = {PurePosixPath("."): SYNAPSE_PROJECT}
    serial = itertools.count(60868100)
    for entity in sorted({*folders, *paths}):
        if entity not in ids:
            ids[entity] = f"syn{next(serial)}"
    absolute = root.resolve()
    # One line per file, then each folder gets the lines of the files at or below it.
    lines: dict[PurePosixPath, list[str]] = {folder: [] for folder in folders}
    for f in paths:
        line = "\t".join(
            [str(absolute / f), ids[f.parent], f.name, ids[f], "True", _content_type(f.name)]
            + [""] * 4
        )
        for folder in f.parents:
            lines[folder].append(line)
    header = "\t".join(_MANIFEST_COLUMNS)
    written = []
    for folder in folders:
        text = "\n".join([header, *lines[folder]]) + "\n"
        rel = str(folder / MANIFEST) if folder != PurePosixPath(".") else MANIFEST
        write_atomic(root / rel, text)
        written.append(rel)
    return written


_MANAGED_DIRS = (IMAGES_DIR, SEGMENTATIONS_DIR, PATIENT_INFO_DIR)
_MANAGED_ROOT_FILES = (
    *CLINICAL_TABLE_NAMES,
    SPLITS_NAME,
    *QUALITY_SCORES_NAMES,
    MANIFEST,
    "manifest.csv",
)


def clean_stale(root: Path, keep: set[str]) -> list[str]:
    """Remove what an earlier phantom run left in ``root`` that this run did not write
    (cases no longer chosen, phases beyond ``num_phases``, the other name-case variant, temp
    files of killed runs). Only dataset folders and files are touched; returns what went."""
    removed: list[str] = []
    for name in _MANAGED_ROOT_FILES:
        if name not in keep and (root / name).is_file():
            (root / name).unlink()
            removed.append(name)
    for top in _MANAGED_DIRS:
        base = root / top
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base, topdown=False):
            here = Path(dirpath)
            for fname in filenames:
                rel = (here / fname).relative_to(root).as_posix()
                if rel not in keep:
                    (here / fname).unlink()
                    removed.append(rel)
            for dname in dirnames:
                sub = here / dname
                if sub.is_dir() and not any(sub.iterdir()):
                    sub.rmdir()
        if base.is_dir() and not any(base.iterdir()):
            base.rmdir()
    for stray in root.glob(f"{ATOMIC_TEMP_PREFIX}*"):
        if stray.is_file():
            stray.unlink()
        elif stray.is_dir():
            shutil.rmtree(stray)
    return removed
