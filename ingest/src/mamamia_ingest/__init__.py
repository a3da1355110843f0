"""mamamia_ingest: raw MAMA-MIA folder to catalog, and phantom datasets."""

from __future__ import annotations

__all__: list[str] = []
