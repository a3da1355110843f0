"""The typed result of a sync: what was downloaded, skipped, failed (and why), deleted."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mamamia._errors import MamamiaError

__all__ = ["Action", "FileResult", "SyncError", "SyncReport"]


class SyncError(MamamiaError):
    """A sync cannot start or go on (bad arguments, unreadable state, unreachable Synapse)."""


Action = Literal[
    "downloaded",  # fetched and verified
    "skipped",  # already up to date
    "adopted",  # a local file without state hashed equal to upstream: kept, not fetched
    "would_download",  # --dry-run
    "failed",  # kept failing, or refused (see reason)
    "deleted_upstream",  # in our state, gone from Synapse (kept unless --delete)
    "removed",  # deleted locally because it is gone upstream (--delete)
    "verified",  # --verify: hashes equal to the state
    "mismatch",  # --verify: missing, wrong size or wrong MD5 (see reason)
    "repaired",  # --verify --repair: fetched again and verified
]


@dataclass(frozen=True)
class FileResult:
    """One file's outcome. ``path`` is relative to the mirror root, '/'-separated."""

    path: str
    synapse_id: str
    action: Action
    size: int | None = None
    reason: str | None = None
    attempts: int = 0


@dataclass
class SyncReport:
    """What a :func:`mamamia.sync` run did. ``ok`` is False when any file failed or mismatched."""

    dest: str
    source: str
    dry_run: bool = False
    downloaded: list[FileResult] = field(default_factory=list)
    skipped: list[FileResult] = field(default_factory=list)
    adopted: list[FileResult] = field(default_factory=list)
    would_download: list[FileResult] = field(default_factory=list)
    failed: list[FileResult] = field(default_factory=list)
    deleted_upstream: list[FileResult] = field(default_factory=list)
    removed: list[FileResult] = field(default_factory=list)
    verified: list[FileResult] = field(default_factory=list)
    mismatched: list[FileResult] = field(default_factory=list)
    repaired: list[FileResult] = field(default_factory=list)
    #: Bytes written from the network (resumed parts count once).
    bytes_downloaded: int = 0
    #: Bytes the run meant to transfer (the dry-run figure).
    bytes_planned: int = 0
    #: Local files read in full to compute an MD5 (0 on a stat-only re-sync).
    files_hashed: int = 0
    #: Files selected by --include / --cohort (after filtering), and listed upstream in total.
    files_selected: int = 0
    files_listed: int = 0
    #: --cohort: the patient ids the WHERE clause selected (uppercase, sorted).
    cohort_cases: list[str] | None = None
    #: Problems that are not about one file (an incomplete listing, a skipped deletion check).
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.mismatched

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def add(self, result: FileResult) -> None:
        bucket = {
            "downloaded": self.downloaded,
            "skipped": self.skipped,
            "adopted": self.adopted,
            "would_download": self.would_download,
            "failed": self.failed,
            "deleted_upstream": self.deleted_upstream,
            "removed": self.removed,
            "verified": self.verified,
            "mismatch": self.mismatched,
            "repaired": self.repaired,
        }[result.action]
        bucket.append(result)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def summary(self) -> str:
        """A few human lines: counts, bytes, and every failure with its reason."""
        lines: list[str] = []
        if self.dry_run:
            lines.append(
                f"dry run: would download {len(self.would_download)} files "
                f"({_human(self.bytes_planned)}); {len(self.skipped)} up to date"
            )
        elif self.verified or self.mismatched or self.repaired:
            lines.append(
                f"verify: {len(self.verified)} ok, {len(self.mismatched)} differ, "
                f"{len(self.repaired)} repaired"
            )
        else:
            lines.append(
                f"downloaded {len(self.downloaded)} files ({_human(self.bytes_downloaded)}), "
                f"{len(self.skipped) + len(self.adopted)} up to date, {len(self.failed)} failed"
            )
        if self.cohort_cases is not None:
            lines.append(f"cohort: {len(self.cohort_cases)} cases")
        if self.deleted_upstream:
            lines.append(
                f"{len(self.deleted_upstream)} files were deleted upstream (kept locally; --delete removes them):"
            )
            lines.extend(f"  {r.path} ({r.synapse_id})" for r in self.deleted_upstream)
        if self.removed:
            lines.append(f"removed {len(self.removed)} files deleted upstream")
        for warning in self.warnings:
            lines.append(f"warning: {warning}")
        for r in self.mismatched:
            lines.append(f"DIFFERS {r.path} ({r.synapse_id}): {r.reason}")
        for r in self.failed:
            lines.append(f"FAILED {r.path} ({r.synapse_id}): {r.reason}")
        return "\n".join(lines)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"
