"""mamamia: the MAMA-MIA catalog from Python."""

from __future__ import annotations

__all__: list[str] = []
