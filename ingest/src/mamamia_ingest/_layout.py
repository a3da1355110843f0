"""Finding the files of a raw MAMA-MIA folder: names matched case-insensitively, keyed by the
uppercase patient_id; Synapse manifest files and unknown files are ignored (unknown ones noted).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mamamia_schema import Problem, Severity

__all__ = ["CASE_ID", "CaseFiles", "RawLayout", "SourceFile", "discover"]

#: A safe patient id: no dots, slashes or unicode (it becomes a folder name).
CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

_PHASE = re.compile(r"^(?P<case>.+)_(?P<phase>\d{4})\.nii(?P<gz>\.gz)?$", re.IGNORECASE)
_MASK = re.compile(r"^(?P<case>.+)\.nii(?P<gz>\.gz)?$", re.IGNORECASE)
_IGNORED = {"synapse_metadata_manifest.tsv", "manifest.csv", ".ds_store", "thumbs.db"}


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
    """The volumes of one case that the mirror holds."""

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
    """What ``discover`` found under a raw root."""

    root: Path
    clinical: Path | None = None
    splits: Path | None = None
    quality: Path | None = None
    patient_info: dict[str, Path] = field(default_factory=dict)
    cases: dict[str, CaseFiles] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


def _child(entries: list[os.DirEntry[str]], name: str, *, directory: bool) -> Path | None:
    """The entry called ``name`` in any letter case (exact case preferred)."""
    matches = [e for e in entries if e.name.lower() == name.lower() and e.is_dir() == directory]
    matches.sort(key=lambda e: e.name != name)
    return Path(matches[0].path) if matches else None


def _source(layout: RawLayout, role: str, entry: os.DirEntry[str]) -> SourceFile:
    st = entry.stat()
    path = Path(entry.path)
    return SourceFile(role, path, layout.rel(path), st.st_size, st.st_mtime_ns)


def _pick(
    layout: RawLayout, case: str, candidates: dict[bool, os.DirEntry[str]], what: str
) -> os.DirEntry[str]:
    """Prefer the .nii.gz when both a .nii and a .nii.gz exist (and say so)."""
    if True in candidates and False in candidates:
        layout.problems.append(
            Problem(
                severity=Severity.WARNING,
                case=case,
                file=layout.rel(Path(candidates[False].path)),
                rule="duplicate_file",
                message=(
                    f"case {case}: {what} exists as both {candidates[True].name} and "
                    f"{candidates[False].name}; using the .nii.gz and ignoring the .nii"
                ),
            )
        )
    return candidates.get(True) or candidates[False]


def _bad_id(layout: RawLayout, case: str, path: Path) -> bool:
    if CASE_ID.match(case):
        return False
    layout.problems.append(
        Problem(
            severity=Severity.ERROR,
            case=None,
            file=layout.rel(path),
            value=repr(case),
            rule="case_id",
            message=f"{layout.rel(path)}: {case!r} is not a valid patient_id; ignored",
        )
    )
    return True


def _note_unknown(layout: RawLayout, path: Path, case: str | None) -> None:
    layout.problems.append(
        Problem(
            severity=Severity.NOTE,
            case=case,
            file=layout.rel(path),
            rule="unknown_file",
            message=f"{layout.rel(path)}: not a MAMA-MIA file name; ignored",
        )
    )


def _scan_images(layout: RawLayout, images: Path) -> None:
    for folder in _entries(images):
        if not folder.is_dir():
            if folder.name.lower() not in _IGNORED:
                _note_unknown(layout, Path(folder.path), None)
            continue
        case = folder.name.upper()
        if _bad_id(layout, case, Path(folder.path)):
            continue
        by_phase: dict[int, dict[bool, os.DirEntry[str]]] = {}
        for entry in _entries(Path(folder.path)):
            if entry.name.lower() in _IGNORED or entry.name.startswith("."):
                continue
            m = _PHASE.match(entry.name)
            if m is None or not entry.is_file() or m.group("case").upper() != case:
                _note_unknown(layout, Path(entry.path), case)
                continue
            by_phase.setdefault(int(m.group("phase")), {})[m.group("gz") is not None] = entry
        if not by_phase:
            continue
        files = layout.cases.setdefault(case, CaseFiles(case))
        expected = list(range(max(by_phase) + 1))
        missing = [p for p in expected if p not in by_phase]
        if missing:
            layout.problems.append(
                Problem(
                    severity=Severity.ERROR,
                    case=case,
                    file=layout.rel(Path(folder.path)),
                    value=", ".join(f"{p:04d}" for p in missing),
                    rule="missing_phase",
                    message=(
                        f"case {case}: phases {', '.join(f'_{p:04d}' for p in missing)} are "
                        f"missing from {layout.rel(Path(folder.path))}; its volumes are skipped"
                    ),
                )
            )
            files.broken = True
            continue
        for p in expected:
            entry = _pick(layout, case, by_phase[p], f"phase _{p:04d}")
            files.phases.append(_source(layout, f"image:{p:04d}", entry))


def _scan_masks(layout: RawLayout, folder: Path, kind: str) -> None:
    by_case: dict[str, dict[bool, os.DirEntry[str]]] = {}
    for entry in _entries(folder):
        if entry.name.lower() in _IGNORED or entry.name.startswith("."):
            continue
        m = _MASK.match(entry.name)
        if m is None or not entry.is_file():
            _note_unknown(layout, Path(entry.path), None)
            continue
        case = m.group("case").upper()
        if _bad_id(layout, case, Path(entry.path)):
            continue
        by_case.setdefault(case, {})[m.group("gz") is not None] = entry
    for case, candidates in sorted(by_case.items()):
        entry = _pick(layout, case, candidates, f"the {kind} mask")
        files = layout.cases.setdefault(case, CaseFiles(case))
        setattr(files, kind, _source(layout, kind, entry))


def discover(root: Path) -> RawLayout:
    """Find the tables and the per-case volumes under ``root``."""
    layout = RawLayout(root=root)
    top = _entries(root)
    layout.clinical = _child(top, "clinical_and_imaging_info.xlsx", directory=False) or _child(
        top, "clinical_and_imaging_info.csv", directory=False
    )
    layout.splits = _child(top, "train_test_splits.csv", directory=False)
    quality = [
        e for e in top if e.is_file() and re.fullmatch(r".*quality_scores.*\.csv", e.name, re.I)
    ]
    if quality:
        layout.quality = Path(quality[0].path)
    images = _child(top, "images", directory=True)
    if images is not None:
        _scan_images(layout, images)
    segs = _child(top, "segmentations", directory=True)
    if segs is not None:
        seg_entries = _entries(segs)
        for kind in ("expert", "automatic"):
            folder = _child(seg_entries, kind, directory=True)
            if folder is not None:
                _scan_masks(layout, folder, kind)
    info = _child(top, "patient_info_files", directory=True)
    if info is not None:
        for entry in _entries(info):
            m = re.fullmatch(r"(.+)\.json", entry.name, re.I)
            if m and entry.is_file() and CASE_ID.match(m.group(1)):
                layout.patient_info[m.group(1).upper()] = Path(entry.path)
    return layout
