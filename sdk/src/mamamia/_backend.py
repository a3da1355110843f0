"""What a Catalog needs from where its data lives: a local folder or a server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import pyarrow as pa

from mamamia._volume import ArrayLike

__all__ = ["Backend"]


class Backend(Protocol):
    """One catalog version's tables and arrays. Local and remote backends give equal answers."""

    @property
    def manifest(self) -> Mapping[str, Any]: ...

    @property
    def location(self) -> str: ...

    def sql(self, query: str, params: Mapping[str, Any]) -> pa.Table: ...

    def table_names(self) -> list[str]: ...

    def table_schema(self, name: str) -> pa.Schema: ...

    def open_array(self, zarr_path: str) -> ArrayLike: ...

    def close(self) -> None: ...
