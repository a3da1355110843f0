"""The raw MAMA-MIA layout, defined once: file names, what each name is, and finding the files.

A release folder looks like this (names matched in any letter case; docs/dataset.md)::

    clinical_and_imaging_info.xlsx              the clinical table (a CSV copy is accepted too)
    train_test_splits.csv                       the challenge split
    *quality_scores*.csv                        expert ratings of the automatic masks
    images/<CASE>/<CASE>_000N.nii.gz            one file per DCE phase, N = 0, 1, ...
    segmentations/expert/<CASE>.nii.gz          the expert tumour mask
    segmentations/automatic/<CASE>.nii.gz       the preliminary automatic mask
    patient_info_files/<CASE>.json              per-case JSON (second release)

`classify` names what one relative path is; `discover` walks a folder and applies the rules
for duplicates (one file chosen deterministically, a warning naming both); `locate_raw_files`
is the tables-only part of `discover`. Ingest, sync, the table readers and the phantom writer
all take their names from here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from mamamia._errors import TableReadError
from mamamia_schema import PATIENT_ID_PATTERN, Problem, Severity, VolumeKind

__all__ = [
    "CLINICAL_TABLE_NAMES",
    "CLINICAL_TABLE_STEM",
    "DATA_SHEET",
    "IGNORED_FILE_NAMES",
    "IMAGES_DIR",
    "LEGEND_SHEET",
    "MASK_KINDS",
    "PATIENT_ID",
    "PATIENT_INFO_DIR",
    "QUALITY_SCORES_NAMES",
    "QUALITY_SCORES_PATTERN",
    "SEGMENTATIONS_DIR",
    "SPLITS_NAME",
    "SPLITS_NAMES",
    "SYNAPSE_MANIFEST",
    "CaseFiles",
    "RawFiles",
    "RawKind",
    "RawLayout",
    "RawName",
    "SourceFile",
    "case_of_name",
    "classify",
    "discover",
    "find_raw_file",
    "image_name",
    "is_ignored",
    "locate_raw_files",
    "mask_name",
    "patient_info_name",
]

CLINICAL_TABLE_STEM = "clinical_and_imaging_info"
#: The clinical table's names, preferred first (the release ships the xlsx).
CLINICAL_TABLE_NAMES: tuple[str, ...] = (
    f"{CLINICAL_TABLE_STEM}.xlsx",
    f"{CLINICAL_TABLE_STEM}.csv",
)
#: The clinical workbook's sheets: the rows, and the column documentation.
DATA_SHEET = "dataset_info"
LEGEND_SHEET = "legend"
SPLITS_NAME = "train_test_splits.csv"
SPLITS_NAMES: tuple[str, ...] = (SPLITS_NAME,)
#: The quality-score names seen in releases, preferred first when a folder has several.
QUALITY_SCORES_NAMES: tuple[str, ...] = (
    "preliminary_automatic_segmentations_quality_scores.csv",
    "automatic_segmentations_quality_scores.csv",
)
#: Any root CSV with ``quality_scores`` in its name holds the scores (releases renamed it).
QUALITY_SCORES_PATTERN = re.compile(r".*quality_scores.*\.csv", re.IGNORECASE)
IMAGES_DIR = "images"
SEGMENTATIONS_DIR = "segmentations"
PATIENT_INFO_DIR = "patient_info_files"
#: The mask folders under ``segmentations/``, one per mask kind.
MASK_KINDS: tuple[VolumeKind, ...] = (VolumeKind.EXPERT, VolumeKind.AUTOMATIC)
#: What ``synapseutils.syncFromSynapse`` leaves in every folder it downloads.
SYNAPSE_MANIFEST = "SYNAPSE_METADATA_MANIFEST.tsv"
#: Files that are never dataset content (compared lowercased); dot-files are ignored too.
IGNORED_FILE_NAMES: frozenset[str] = frozenset(
    {SYNAPSE_MANIFEST.lower(), "manifest.csv", ".ds_store", "thumbs.db", "desktop.ini"}
)
PATIENT_ID = re.compile(PATIENT_ID_PATTERN)

_PHASE = re.compile(r"^(?P<case>.+)_(?P<phase>\d{4})\.nii(?P<gz>\.gz)?$", re.IGNORECASE)
_MASK = re.compile(r"^(?P<case>.+)\.nii(?P<gz>\.gz)?$", re.IGNORECASE)
_JSON = re.compile(r"^(?P<case>.+)\.json$", re.IGNORECASE)
_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".json", ".nrrd", ".mha")


def image_name(case: str, phase: int, *, lowercase: bool = False) -> str:
    """``images/<CASE>/<CASE>_000N.nii.gz`` (the file name lowercased where a copy does that)."""
    stem = case.lower() if lowercase else case
    return f"{IMAGES_DIR}/{case}/{stem}_{phase:04d}.nii.gz"


def mask_name(kind: VolumeKind | str, case: str, *, lowercase: bool = False) -> str:
    """``segmentations/<kind>/<CASE>.nii.gz``; expert masks stay uppercase in lowercase copies."""
    kind = VolumeKind(kind)
    if kind not in MASK_KINDS:
        raise ValueError(f"mask kind {kind.value!r}: not one of {[k.value for k in MASK_KINDS]}")
    stem = case.lower() if lowercase and kind is VolumeKind.AUTOMATIC else case
    return f"{SEGMENTATIONS_DIR}/{kind.value}/{stem}.nii.gz"


def patient_info_name(case: str, *, lowercase: bool = False) -> str:
    """``patient_info_files/<CASE>.json``."""
    return f"{PATIENT_INFO_DIR}/{case.lower() if lowercase else case}.json"


def is_ignored(name: str) -> bool:
    """A file that is never dataset content: a Synapse manifest, OS litter or a dot-file."""
    return name.lower() in IGNORED_FILE_NAMES or name.startswith(".")


def case_of_name(name: str) -> str:
    """The uppercase patient id a mask or JSON file name stands for (``duke_001.nii.gz``)."""
    lowered = name.lower()
    for suffix in _VOLUME_SUFFIXES:
        if lowered.endswith(suffix):
            return name[: -len(suffix)].upper()
    return name.split(".")[0].upper()


class RawKind(StrEnum):
    """What a path in a raw folder is."""

    CLINICAL_TABLE = "clinical_table"
    SPLITS = "splits"
    QUALITY_SCORES = "quality_scores"
    PATIENT_INFO = "patient_info"
    IMAGE = "image"
    EXPERT = "expert"
    AUTOMATIC = "automatic"
    IGNORED = "ignored"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class RawName:
    """The classification of one relative path.

    ``case`` is the uppercase patient id the file belongs to (also for unknown files inside a
    case's folder, so that a cohort mirror keeps them with their case); ``phase`` is set for
    images; ``compressed`` tells ``.nii.gz`` from ``.nii``.
    """

    kind: RawKind
    case: str | None = None
    phase: int | None = None
    compressed: bool = False

    @property
    def volume_kind(self) -> VolumeKind | None:
        """The catalog's kind for an image or mask file, None for any other file."""
        if self.kind in (RawKind.IMAGE, RawKind.EXPERT, RawKind.AUTOMATIC):
            return VolumeKind(self.kind.value)
        return None


def _segments(path: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(path, str):
        return tuple(s for s in path.replace("\\", "/").split("/") if s and s != ".")
    return tuple(path)


def _classify_root(name: str) -> RawName:
    lower = name.lower()
    if lower in CLINICAL_TABLE_NAMES:
        return RawName(RawKind.CLINICAL_TABLE)
    if lower in SPLITS_NAMES:
        return RawName(RawKind.SPLITS)
    if QUALITY_SCORES_PATTERN.fullmatch(name):
        return RawName(RawKind.QUALITY_SCORES)
    return RawName(RawKind.UNKNOWN)


def classify(path: str | Sequence[str]) -> RawName:
    """What the file at ``path`` (relative to the release root, ``/``-separated or as segments)
    is. Pure: looks at the name only, in any letter case."""
    segments = _segments(path)
    if not segments:
        return RawName(RawKind.UNKNOWN)
    name = segments[-1]
    if is_ignored(name):
        return RawName(RawKind.IGNORED)
    top = segments[0].lower()
    if len(segments) == 1:
        return _classify_root(name)
    if top == IMAGES_DIR and len(segments) >= 3:
        case = segments[1].upper()
        m = _PHASE.match(name)
        if len(segments) == 3 and m is not None and m.group("case").upper() == case:
            return RawName(RawKind.IMAGE, case, int(m.group("phase")), m.group("gz") is not None)
        return RawName(RawKind.UNKNOWN, case)
    if top == SEGMENTATIONS_DIR and len(segments) >= 3:
        case = case_of_name(name)
        m = _MASK.match(name)
        kinds = {k.value: RawKind(k.value) for k in MASK_KINDS}
        kind = kinds.get(segments[1].lower())
        if len(segments) == 3 and m is not None and kind is not None:
            return RawName(kind, m.group("case").upper(), None, m.group("gz") is not None)
        return RawName(RawKind.UNKNOWN, case)
    if top == PATIENT_INFO_DIR and len(segments) == 2:
        m = _JSON.match(name)
        if m is not None:
            return RawName(RawKind.PATIENT_INFO, m.group("case").upper())
        return RawName(RawKind.UNKNOWN, case_of_name(name))
    return RawName(RawKind.UNKNOWN)


@dataclass(frozen=True)
class SourceFile:
    """One source volume: ``role`` is ``image:0000``..., ``expert`` or ``automatic``."""

    role: str
    path: Path
    rel: str
    size: int
    mtime_ns: int


@dataclass
class CaseFiles:
    """The volumes of one case that the folder holds."""

    patient_id: str
    phases: list[SourceFile] = field(default_factory=list)
    expert: SourceFile | None = None
    automatic: SourceFile | None = None
    #: True when the images are unusable as a whole (an error was reported already).
    broken: bool = False

    def files(self) -> list[SourceFile]:
        out = list(self.phases)
        if self.expert is not None:
            out.append(self.expert)
        if self.automatic is not None:
            out.append(self.automatic)
        return out

    @property
    def source_bytes(self) -> int:
        return sum(f.size for f in self.files())


@dataclass
class RawLayout:
    """What `discover` found under a raw root (paths None where absent)."""

    root: Path
    clinical: Path | None = None
    splits: Path | None = None
    quality: Path | None = None
    patient_info: dict[str, Path] = field(default_factory=dict)
    cases: dict[str, CaseFiles] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


@dataclass(frozen=True)
class RawFiles:
    """Where a raw MAMA-MIA folder keeps its tables (None where absent)."""

    root: Path
    clinical_table: Path | None
    splits: Path | None
    quality_scores: Path | None
    patient_info: dict[str, Path]  # uppercase patient_id -> JSON file
    problems: list[Problem]


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


def _child(entries: list[os.DirEntry[str]], name: str) -> Path | None:
    """The sub-folder called ``name`` in any letter case (exact case, then lexically first)."""
    matches = sorted(
        (e for e in entries if e.name.lower() == name.lower() and e.is_dir()),
        key=lambda e: (e.name != name, e.name),
    )
    return Path(matches[0].path) if matches else None


def _pick(
    layout: RawLayout, what: str, case: str | None, candidates: list[Path], preferred: Sequence[str]
) -> Path:
    """One file of several that hold the same thing, chosen deterministically: a ``.nii.gz``
    before a ``.nii`` (SimpleITK would read the ``.nii`` when asked for either), a name earlier
    in ``preferred``, the exact spelling before another letter case, then the lexically first.
    The others are named in a ``duplicate_file`` warning."""
    lower = [n.lower() for n in preferred]

    def rank(p: Path) -> tuple[bool, int, bool, str]:
        i = lower.index(p.name.lower()) if p.name.lower() in lower else len(lower)
        exact = i < len(preferred) and p.name == preferred[i]
        return (p.name.lower().endswith(".nii"), i, not exact, p.name)

    ordered = sorted(candidates, key=rank)
    chosen, others = ordered[0], ordered[1:]
    if others:
        names = ", ".join(layout.rel(o) for o in others)
        layout.problems.append(
            Problem(
                severity=Severity.WARNING,
                case=case,
                file=names,
                rule="duplicate_file",
                message=(
                    f"{what} exists as {layout.rel(chosen)} and as {names}; "
                    f"using {layout.rel(chosen)} and ignoring the rest"
                ),
            )
        )
    return chosen


def _problem(
    layout: RawLayout,
    severity: Severity,
    path: Path,
    rule: str,
    text: str,
    case: str | None,
    value: str | None = None,
) -> None:
    rel = layout.rel(path)
    layout.problems.append(
        Problem(
            severity=severity, case=case, file=rel, rule=rule, value=value, message=f"{rel}: {text}"
        )
    )


def _scan(layout: RawLayout, folder: Path, depth: int, found: list[tuple[RawName, Path]]) -> None:
    """Classify every file below ``folder`` (at most ``depth`` levels), noting unknown ones."""
    for entry in _entries(folder):
        path = Path(entry.path)
        if entry.is_dir():
            if depth > 1:
                _scan(layout, path, depth - 1, found)
            continue
        name = classify(layout.rel(path))
        if name.kind is RawKind.IGNORED:
            continue
        if name.kind is RawKind.UNKNOWN:
            text = "not a MAMA-MIA file name; ignored"
            _problem(layout, Severity.NOTE, path, "unknown_file", text, name.case)
            continue
        if name.case is not None and not PATIENT_ID.match(name.case):
            text = f"{name.case!r} is not a valid patient_id; ignored"
            _problem(layout, Severity.ERROR, path, "case_id", text, None, repr(name.case))
            continue
        found.append((name, path))


def _source(layout: RawLayout, role: str, path: Path) -> SourceFile:
    st = path.stat()
    return SourceFile(role, path, layout.rel(path), st.st_size, st.st_mtime_ns)


def _add_images(layout: RawLayout, found: list[tuple[RawName, Path]]) -> None:
    by_case: dict[str, dict[int, list[Path]]] = {}
    for name, path in found:
        if name.kind is RawKind.IMAGE and name.case is not None and name.phase is not None:
            by_case.setdefault(name.case, {}).setdefault(name.phase, []).append(path)
    for case, by_phase in sorted(by_case.items()):
        files = layout.cases.setdefault(case, CaseFiles(case))
        folder = by_phase[min(by_phase)][0].parent
        missing = [p for p in range(max(by_phase) + 1) if p not in by_phase]
        if missing:
            text = (
                f"case {case}: phases {', '.join(f'_{p:04d}' for p in missing)} are missing; "
                "its volumes are skipped"
            )
            value = ", ".join(f"{p:04d}" for p in missing)
            _problem(layout, Severity.ERROR, folder, "missing_phase", text, case, value)
            files.broken = True
            continue
        for p in sorted(by_phase):
            path = _pick(layout, f"case {case}: phase _{p:04d}", case, by_phase[p], ())
            files.phases.append(_source(layout, f"image:{p:04d}", path))


def _add_masks(layout: RawLayout, found: list[tuple[RawName, Path]]) -> None:
    for kind in MASK_KINDS:
        by_case: dict[str, list[Path]] = {}
        for name, path in found:
            if name.volume_kind is kind and name.case is not None:
                by_case.setdefault(name.case, []).append(path)
        for case, paths in sorted(by_case.items()):
            path = _pick(layout, f"case {case}: the {kind.value} mask", case, paths, ())
            files = layout.cases.setdefault(case, CaseFiles(case))
            setattr(files, kind.value, _source(layout, kind.value, path))


def _add_tables(layout: RawLayout, found: list[tuple[RawName, Path]]) -> None:
    def one(kind: RawKind, preferred: Sequence[str]) -> Path | None:
        paths = [p for n, p in found if n.kind is kind]
        return _pick(layout, f"the {kind.value} file", None, paths, preferred) if paths else None

    layout.clinical = one(RawKind.CLINICAL_TABLE, CLINICAL_TABLE_NAMES)
    layout.splits = one(RawKind.SPLITS, SPLITS_NAMES)
    layout.quality = one(RawKind.QUALITY_SCORES, QUALITY_SCORES_NAMES)
    by_case: dict[str, list[Path]] = {}
    for name, path in found:
        if name.kind is RawKind.PATIENT_INFO and name.case is not None:
            by_case.setdefault(name.case, []).append(path)
    for case, paths in sorted(by_case.items()):
        what = f"case {case}: the per-case JSON"
        layout.patient_info[case] = _pick(layout, what, case, paths, (f"{case}.json",))


def discover(root: str | Path, *, volumes: bool = True) -> RawLayout:
    """Find the tables, the per-case JSON files and (unless ``volumes=False``) the per-case
    volumes under ``root``. Unknown files are noted, invalid patient ids are errors, and of two
    files holding the same thing one is chosen deterministically with a warning naming both;
    nothing is read. A missing folder gives an empty layout."""
    root = Path(root)
    layout = RawLayout(root=root)
    found: list[tuple[RawName, Path]] = []
    top = _entries(root)
    for entry in top:
        name = classify(entry.name)
        # Other root files (a README, notes) are not the dataset's and are left alone.
        if entry.is_file() and name.kind not in (RawKind.IGNORED, RawKind.UNKNOWN):
            found.append((name, Path(entry.path)))
    info = _child(top, PATIENT_INFO_DIR)
    if info is not None:
        _scan(layout, info, 1, found)
    if volumes:
        images = _child(top, IMAGES_DIR)
        if images is not None:
            _scan(layout, images, 2, found)
        segmentations = _child(top, SEGMENTATIONS_DIR)
        if segmentations is not None:
            for kind in MASK_KINDS:
                folder = _child(_entries(segmentations), kind.value)
                if folder is not None:
                    _scan(layout, folder, 1, found)
    _add_tables(layout, found)
    _add_images(layout, found)
    _add_masks(layout, found)
    return layout


def find_raw_file(directory: str | Path, names: Sequence[str]) -> Path | None:
    """The first of ``names`` present in ``directory``, matched case-insensitively (None if
    none); Synapse manifests never match. Names earlier in ``names`` win; among spellings of one
    name the exact one, then the lexically first, win."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    wanted = [n.lower() for n in names]
    files = [
        Path(e.path)
        for e in _entries(directory)
        if e.is_file() and not is_ignored(e.name) and e.name.lower() in wanted
    ]
    if not files:
        return None
    return min(
        files,
        key=lambda p: (
            wanted.index(p.name.lower()),
            p.name != names[wanted.index(p.name.lower())],
            p.name,
        ),
    )


def locate_raw_files(root: str | Path) -> RawFiles:
    """Find the table files of a raw folder (`discover` without the volumes). A missing clinical
    table is an error problem, a missing splits or quality file a warning, not an exception;
    raises `TableReadError` when ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise TableReadError(f"{root}: not a folder")
    layout = discover(root, volumes=False)
    problems = list(layout.problems)
    expected = (
        (layout.clinical, CLINICAL_TABLE_NAMES[:1], Severity.ERROR),
        (layout.splits, SPLITS_NAMES, Severity.WARNING),
        (layout.quality, QUALITY_SCORES_NAMES, Severity.WARNING),
    )
    for found, names, severity in expected:
        if found is None:
            label = names[0]
            text = f"no {' or '.join(names)} in {root}"
            problems.append(
                Problem(
                    severity=severity,
                    file=label,
                    rule="missing_file",
                    message=f"{label}: {text} (rule missing_file).",
                )
            )
    return RawFiles(
        root=root,
        clinical_table=layout.clinical,
        splits=layout.splits,
        quality_scores=layout.quality,
        patient_info=layout.patient_info,
        problems=problems,
    )
