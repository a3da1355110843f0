"""Which cases need a worker: decided in the ingest process from stat() alone.

A case whose every source file has the role, size and mtime_ns recorded by one of its finished
generations, and whose generation id (those files' recorded hashes, its phase times and the
byte settings) names that generation, is reused without reading a voxel or hashing a byte;
that takes only stat() and one small JSON read per case. Only the other cases go to workers,
so an unchanged re-run starts no process pool at all. A file whose stat() changed (touched,
copied) goes to a worker, which hashes it and still reuses the generation when its content is
the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from mamamia_ingest._volumes import CaseJob, CaseResult, reuse_unchanged

__all__ = ["ReusePlan", "plan_reuse"]


class ReusePlan:
    """The cases reused as they are (in job order) and the jobs left to run."""

    __slots__ = ("reused", "to_run")

    def __init__(self, reused: list[tuple[CaseJob, CaseResult]], to_run: list[CaseJob]) -> None:
        self.reused = reused
        self.to_run = to_run


def plan_reuse(case_jobs: Sequence[CaseJob]) -> ReusePlan:
    reused: list[tuple[CaseJob, CaseResult]] = []
    to_run: list[CaseJob] = []
    for job in case_jobs:
        result = reuse_unchanged(job)
        if result is None:
            to_run.append(job)
        else:
            reused.append((job, result))
    return ReusePlan(reused, to_run)
