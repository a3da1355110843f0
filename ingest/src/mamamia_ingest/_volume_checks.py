"""Problems about one volume's values that the catalog's voxel rule makes worth a word.

The catalog holds the values SimpleITK reads (docs/ingest.md, "The voxel rule"): NaN and +-inf
become 0, and a case's phases are stored in their common numpy type. Both are reported rather
than done silently, and a common type that would round values (64-bit integers beside other
types, whose common type is float64) is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from mamamia_schema import Problem, Severity

__all__ = ["lossy_mix_problem", "non_finite_problems"]


def non_finite_problems(case: str, rel: str, count: int) -> list[Problem]:
    """A warning for a volume with ``count`` NaN/inf voxels (none when there are none)."""
    if not count:
        return []
    problem = Problem(
        severity=Severity.WARNING,
        case=case,
        file=rel,
        rule="non_finite",
        value=str(count),
        message=f"case {case}: {rel} holds {count} NaN/inf voxels; stored as 0 (SimpleITK's "
        "reading), intensity statistics over the finite voxels only",
    )
    return [problem]


def lossy_mix_problem(case: str, dtypes: Iterable[np.dtype[Any]]) -> Problem | None:
    """An error when the phases' common type cannot hold every value of every phase."""
    kinds = sorted(set(dtypes), key=str)
    common = np.result_type(*kinds)
    # float64 holds integers exactly only up to 2**53.
    if common.kind != "f" or not any(d.kind in "iu" and d.itemsize == 8 for d in kinds):
        return None
    return Problem(
        severity=Severity.ERROR,
        case=case,
        rule="pixel_type",
        message=f"case {case}: phases mix pixel types ({', '.join(str(d) for d in kinds)}) "
        f"whose common type {common} would round 64-bit integers; the case's volumes are "
        "skipped",
    )
