"""Locating the raw MAMA-MIA files in a folder (shared by ingest and sync).

Which file names hold which table, the Synapse manifests to ignore, and the case-insensitive
look-up of a raw folder's tables and per-case JSON files. Separate from the readers in
`mamamia._tables`: it only finds files, it never opens them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mamamia._errors import TableReadError
from mamamia._table_rows import file_problem
from mamamia_schema import Problem, Severity

__all__ = [
    "CLINICAL_TABLE_NAMES",
    "IGNORED_FILE_NAMES",
    "PATIENT_INFO_DIR",
    "QUALITY_SCORES_NAMES",
    "SPLITS_NAMES",
    "RawFiles",
    "find_raw_dir",
    "find_raw_file",
    "locate_raw_files",
]

CLINICAL_TABLE_NAMES: tuple[str, ...] = (
    "clinical_and_imaging_info.xlsx",
    "clinical_and_imaging_info.csv",
)
SPLITS_NAMES: tuple[str, ...] = ("train_test_splits.csv",)
QUALITY_SCORES_NAMES: tuple[str, ...] = (
    "preliminary_automatic_segmentations_quality_scores.csv",
    "automatic_segmentations_quality_scores.csv",
)
PATIENT_INFO_DIR = "patient_info_files"
#: Files the Synapse client leaves in every folder: not dataset content.
IGNORED_FILE_NAMES: frozenset[str] = frozenset({"synapse_metadata_manifest.tsv", "manifest.csv"})


def find_raw_file(directory: str | Path, names: Sequence[str]) -> Path | None:
    """The first of `names` present in `directory`, matched case-insensitively (None if none).

    Names earlier in `names` win; among spellings of one name the exact one, then the
    lexically first, win (deterministic when a copy has both `X.csv` and `x.csv`).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    by_lower: dict[str, list[Path]] = {}
    for entry in directory.iterdir():
        if entry.is_file() and entry.name.lower() not in IGNORED_FILE_NAMES:
            by_lower.setdefault(entry.name.lower(), []).append(entry)
    for name in names:
        matches = by_lower.get(name.lower())
        if matches:
            exact = [m for m in matches if m.name == name]
            return exact[0] if exact else sorted(matches)[0]
    return None


def find_raw_dir(directory: str | Path, name: str) -> Path | None:
    """The sub-folder `name` of `directory`, matched case-insensitively (None if absent)."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    matches = sorted(
        e for e in directory.iterdir() if e.is_dir() and e.name.lower() == name.lower()
    )
    exact = [m for m in matches if m.name == name]
    return exact[0] if exact else (matches[0] if matches else None)


@dataclass(frozen=True)
class RawFiles:
    """Where a raw MAMA-MIA folder keeps its tables (None where absent)."""

    root: Path
    clinical_table: Path | None
    splits: Path | None
    quality_scores: Path | None
    patient_info: dict[str, Path]  # uppercase patient_id -> JSON file
    problems: list[Problem]


def locate_raw_files(root: str | Path) -> RawFiles:
    """Find the table files of a raw folder, matching names case-insensitively and ignoring the
    Synapse manifests. A missing clinical table is an error problem, not an exception."""
    root = Path(root)
    if not root.is_dir():
        raise TableReadError(f"{root}: not a folder")
    problems: list[Problem] = []
    clinical = find_raw_file(root, CLINICAL_TABLE_NAMES)
    if clinical is None:
        problems.append(
            file_problem(
                Severity.ERROR,
                CLINICAL_TABLE_NAMES[0],
                "missing_file",
                f"no {CLINICAL_TABLE_NAMES[0]} in {root}",
            )
        )
    splits = find_raw_file(root, SPLITS_NAMES)
    quality = find_raw_file(root, QUALITY_SCORES_NAMES)
    for found, names in ((splits, SPLITS_NAMES), (quality, QUALITY_SCORES_NAMES)):
        if found is None:
            problems.append(
                file_problem(
                    Severity.WARNING, names[0], "missing_file", f"no {' or '.join(names)} in {root}"
                )
            )
    info: dict[str, Path] = {}
    info_dir = find_raw_dir(root, PATIENT_INFO_DIR)
    if info_dir is not None:
        for entry in sorted(info_dir.iterdir()):
            lower = entry.name.lower()
            if not entry.is_file() or lower in IGNORED_FILE_NAMES or not lower.endswith(".json"):
                continue
            case = entry.name[: -len(".json")].upper()
            relpath = f"{info_dir.name}/{entry.name}"
            if case in info:
                problems.append(
                    file_problem(
                        Severity.WARNING,
                        relpath,
                        "duplicate_id",
                        f"{case} has two JSON files; using {info[case].name}",
                        case=case,
                    )
                )
                continue
            info[case] = entry
    return RawFiles(
        root=root,
        clinical_table=clinical,
        splits=splits,
        quality_scores=quality,
        patient_info=info,
        problems=problems,
    )
