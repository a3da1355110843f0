"""Phantom MAMA-MIA datasets: the real raw layout with made-up voxels (docs/phantom.md)."""

from __future__ import annotations

from ._spec import PhantomError
from ._writer import DEFAULT_CASES, PhantomCase, PhantomReport, write_phantom

__all__ = ["DEFAULT_CASES", "PhantomCase", "PhantomError", "PhantomReport", "write_phantom"]
