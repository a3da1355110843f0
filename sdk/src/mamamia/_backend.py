"""What a Catalog needs from where its data lives: a local folder, a server or an object store.

``Backend`` is what every backend gives; optional capabilities are their own protocols, checked
with ``isinstance``. Only the Catalog holds a backend: cases, cohorts and the crop stream go
through the Catalog's methods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from mamamia._volume import ArrayLike
from mamamia_schema import CatalogManifest

__all__ = ["Backend", "SupportsPrefetch", "SupportsRegister", "SupportsReopen"]


class Backend(Protocol):
    """One catalog version's tables and arrays. Every backend gives equal answers."""

    @property
    def manifest(self) -> CatalogManifest: ...

    @property
    def location(self) -> str: ...

    def sql(self, query: str, params: Mapping[str, Any]) -> pa.Table: ...

    def table_names(self) -> list[str]: ...

    def table_schema(self, name: str) -> pa.Schema: ...

    def open_array(self, zarr_path: str) -> ArrayLike: ...

    def close(self) -> None: ...


@runtime_checkable
class SupportsPrefetch(Protocol):
    """A backend that fetches volumes over the network into a local chunk cache."""

    def prefetch(
        self,
        zarr_paths: Iterable[str],
        *,
        threads: int | None = None,
        on_chunk: Callable[[int], None] | None = None,
    ) -> int: ...


@runtime_checkable
class SupportsReopen(Protocol):
    """A backend that can be opened again in another process (DataLoader workers)."""

    def reopener(self) -> Callable[[], Backend]: ...


@runtime_checkable
class SupportsRegister(Protocol):
    """A backend that runs queries on this machine, so they can join the user's own tables."""

    def register(self, name: str, data: object) -> None: ...
