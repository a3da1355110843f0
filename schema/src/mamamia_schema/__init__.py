"""mamamia_schema: models of the MAMA-MIA files and of the mamamia catalog."""

from __future__ import annotations

__all__: list[str] = []
