"""``SyncOptions``: what one sync run does, checked once when made (``mamamia.sync`` makes it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mamamia._sync._cohort_filter import check_case_ids
from mamamia._sync._download import RetryPolicy
from mamamia._sync._listing import check_synapse_id
from mamamia._sync._report import SyncError

__all__ = ["DEFAULT_SOURCE", "SyncOptions"]

#: The MAMA-MIA project on Synapse.
DEFAULT_SOURCE = "syn60868042"


@dataclass(frozen=True)
class SyncOptions:
    """The options of one sync or verify run; see :func:`mamamia.sync` for each one.

    ``dest`` is resolved once here: every local path is proven to stay under this exact folder.
    """

    dest: Path
    source: str = DEFAULT_SOURCE
    include: tuple[str, ...] = ()
    cohort: str | None = None
    cohort_ids: tuple[str, ...] | None = None
    jobs: int = 8
    dry_run: bool = False
    delete: bool = False
    verify: bool = False
    repair: bool = False
    synapse_config: Path | None = None
    progress: bool = True
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.repair and not self.verify:
            raise SyncError("--repair goes with --verify")
        if not isinstance(self.jobs, int) or isinstance(self.jobs, bool) or self.jobs < 1:
            raise SyncError(f"--jobs must be at least 1, not {self.jobs}")
        if self.policy.attempts < 1:
            raise SyncError(f"retries must be at least 1, not {self.policy.attempts}")
        if self.policy.backoff_s < 0:
            raise SyncError(f"backoff must not be negative, not {self.policy.backoff_s}")
        check_synapse_id(self.source)
        if self.cohort is not None and self.cohort_ids is not None:
            raise SyncError("give a cohort as a WHERE clause or as case ids, not both")
        if self.cohort_ids is not None:
            object.__setattr__(self, "cohort_ids", tuple(check_case_ids(self.cohort_ids)))
        include = (self.include,) if isinstance(self.include, str) else tuple(self.include)
        object.__setattr__(self, "include", include)
        object.__setattr__(self, "dest", Path(self.dest).expanduser().resolve())
        if self.synapse_config is not None:
            object.__setattr__(self, "synapse_config", Path(self.synapse_config).expanduser())

    @property
    def selects_cases(self) -> bool:
        """Only some cases' files are mirrored (a WHERE clause or a list of ids)."""
        return self.cohort is not None or self.cohort_ids is not None
