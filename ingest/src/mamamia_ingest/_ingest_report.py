"""``IngestReport``, what one ingest did, and ``IngestError``, why it could not run at all."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mamamia import MamamiaError
from mamamia_schema import Problem, Severity

__all__ = ["IngestError", "IngestReport"]


class IngestError(MamamiaError):
    """The ingest cannot run at all (missing clinical table, bad arguments, locked catalog)."""


class IngestReport(BaseModel):
    """What one ingest did; saved as ``ingest-report.json`` in the catalog."""

    raw: str
    catalog: str
    catalog_version: str | None = None
    previous_catalog_version: str | None = None
    #: True when catalog.json was (re)written; False for a run that found nothing to change.
    published: bool = False
    stopped_early: bool = False
    tables_only: bool = False
    cases: int = 0
    cases_with_images: int = 0
    built: int = 0
    reused: int = 0
    failed: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    jobs: int = 1
    problems: list[Problem] = Field(default_factory=list)
    #: Why the run stopped before writing anything (exit 2); the catalog is unchanged.
    fatal: str | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]

    @property
    def notes(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.NOTE]

    @property
    def exit_code(self) -> int:
        """2 for a fatal error, 1 when any error was found, else 0 (warnings and notes alone
        do not fail)."""
        if self.fatal is not None:
            return 2
        return 1 if self.errors else 0

    def summary(self, max_lines: int = 200) -> str:
        """A human summary: counts, then every problem (errors first)."""
        mb = self.bytes_read / 1e6
        rate = mb / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"mamamia ingest {self.raw} -> {self.catalog}",
            f"  cases: {self.cases} ({self.cases_with_images} with volumes); "
            f"generations built {self.built}, reused {self.reused}, failed {self.failed}",
            f"  read {mb:.1f} MB in {self.seconds:.1f} s ({rate:.1f} MB/s, {self.jobs} jobs)",
        ]
        if self.stopped_early:
            lines.append("  stopped at the first error (--strict): the catalog was left as it was")
        elif self.published:
            lines.append(f"  catalog_version {self.catalog_version} (published)")
        else:
            lines.append(f"  catalog_version {self.catalog_version} (unchanged)")
        lines.append(
            f"  problems: {len(self.errors)} errors, {len(self.warnings)} warnings, "
            f"{len(self.notes)} notes"
        )
        order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.NOTE: 2}
        ranked = sorted(self.problems, key=lambda p: order[p.severity])
        for p in ranked[:max_lines]:
            lines.append(f"  {p.severity.value}: {p.message}")
        if len(ranked) > max_lines:
            lines.append(f"  ... and {len(ranked) - max_lines} more (see ingest-report.json)")
        return "\n".join(lines)
