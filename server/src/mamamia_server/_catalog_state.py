"""The catalog version being served, swapped atomically when ingest writes a new one.

A ``CatalogState`` is one catalog version: its manifest, a query engine over the Parquet files
that manifest names, and an SDK ``Catalog`` for the volumes. ``CatalogHolder`` keeps the current
state in one attribute; a request takes it once (``holder.current()``) and uses only that state,
so one answer never mixes two versions. Where the catalog lives is a ``CatalogSource``
(``_catalog_source``: a folder, or an object store): it loads a version and says cheaply
whether catalog.json changed. The check is throttled to one per poll interval; a request
pinned to another version forces one before answering 409.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

import mamamia
from mamamia.sqlguard import QueryLimits
from mamamia_schema import CatalogManifest
from mamamia_server._query_engine import QueryEngine

__all__ = ["CatalogHolder", "CatalogSource", "CatalogState", "level_path", "table_paths"]

_CASE_CACHE = 256
_MEMO_SIZE = 1024


class CatalogSource(Protocol):
    """Where a served catalog lives: builds the state of its current version."""

    def load(self, limits: QueryLimits) -> CatalogState:
        """The state of the version catalog.json names now."""
        ...

    def changed(self, state: CatalogState) -> bool:
        """Whether catalog.json names another version than ``state`` (cheap; may raise)."""
        ...

    def ensure_file(self, state: CatalogState, relative: str) -> None:
        """Make ``relative`` (``volumes/...``) readable under ``state.root`` if it exists."""
        ...


@dataclass(eq=False)
class CatalogState:
    """One catalog version, everything a request needs to answer from it."""

    root: Path
    version: str
    manifest: CatalogManifest
    engine: QueryEngine
    catalog: mamamia.Catalog
    stamp: tuple[int, int, int] | None
    source: CatalogSource
    _cases: OrderedDict[str, mamamia.Case] = field(default_factory=OrderedDict)
    _levels: dict[str, Any] = field(default_factory=dict)
    _volumes: OrderedDict[tuple[str, str], mamamia.Volume] = field(default_factory=OrderedDict)
    _memo: OrderedDict[Any, Any] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def volume(self, patient_id: str, kind: str) -> mamamia.Volume:
        """A case's image or mask (opened once: the array's metadata is read on first use)."""
        key = (patient_id.upper(), kind)
        with self._lock:
            found = self._volumes.get(key)
        if found is not None:
            return found
        case = self.case(patient_id)
        volume = case.image if kind == "image" else case.mask(kind)
        with self._lock:
            self._volumes[key] = volume
            while len(self._volumes) > 3 * _CASE_CACHE:
                self._volumes.popitem(last=False)
        return volume

    def ensure_file(self, relative: str) -> None:
        """Make ``relative`` (``volumes/...``) readable under ``root`` (fetched from an object
        store into the cache; nothing to do for a folder)."""
        self.source.ensure_file(self, relative)

    def opened_volume(self, patient_id: str, kind: str) -> mamamia.Volume | None:
        """The volume if it is open already (no query, no I/O): async routes use it."""
        key = (patient_id.upper(), kind)
        with self._lock:
            found = self._volumes.get(key)
            if found is not None:
                self._volumes.move_to_end(key)
            return found

    def case(self, patient_id: str) -> mamamia.Case:
        """The SDK Case (fields and lazy volumes), cached: volumes open their arrays once."""
        key = patient_id.upper()
        with self._lock:
            found = self._cases.get(key)
            if found is not None:
                self._cases.move_to_end(key)
                return found
        case = self.catalog.case(patient_id)
        with self._lock:
            self._cases[key] = case
            while len(self._cases) > _CASE_CACHE:
                self._cases.popitem(last=False)
        return case

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()``, remembered for this version (a small LRU; errors are not kept)."""
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        value = compute()
        with self._lock:
            self._memo[key] = value
            while len(self._memo) > _MEMO_SIZE:
                self._memo.popitem(last=False)
        return value

    def level_array(self, zarr_path: str, level: int) -> Any | None:
        """The array of another resolution level beside ``zarr_path`` (``.../0`` -> ``.../1``)."""
        relative = level_path(zarr_path, level)
        if relative is None:
            return None
        with self._lock:
            if relative in self._levels:
                return self._levels[relative]
        array: Any | None
        try:
            # The SDK's backend: its direct chunk reader, and a strict store (no silent fill).
            array = self.catalog.open_array(relative)
        except mamamia.NotFoundError:
            array = None
        with self._lock:
            self._levels[relative] = array
        return array

    def table_rows(self) -> dict[str, int | None]:
        return {name: ref.rows for name, ref in self.manifest.tables.items()}

    def schema(self, table: str) -> pa.Schema:
        return self.catalog.schema(table)


def level_path(zarr_path: str, level: int) -> str | None:
    """The path of resolution ``level`` beside a full-resolution array ``.../0``, else None."""
    head, _, tail = zarr_path.rstrip("/").rpartition("/")
    if tail != "0" or not head:
        return None
    return f"{head}/{level}"


def table_paths(root: Path, manifest: CatalogManifest) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    resolved_root = root.resolve()
    for name, ref in manifest.tables.items():
        path = (resolved_root / ref.path).resolve()
        if not path.is_relative_to(resolved_root):
            raise mamamia.CatalogFormatError(f"table {name!r} points outside the catalog")
        paths[name] = path
    return paths


class CatalogHolder:
    """The current ``CatalogState`` of a catalog source, refreshed when catalog.json changes."""

    def __init__(self, source: CatalogSource, limits: QueryLimits, poll_s: float = 1.0) -> None:
        self.source = source
        self.limits = limits
        self.poll_s = poll_s
        self._state = source.load(limits)
        #: where the served files are read (the folder, or an object store's local cache)
        self.root = self._state.root
        self._checked = time.monotonic()
        self._reload_lock = threading.Lock()
        #: the last reload failure (shown by /v1/health), None once a reload succeeds
        self.last_error: str | None = None

    def peek(self) -> CatalogState:
        """The current state without checking for a new one."""
        return self._state

    def due(self, version: str | None = None) -> bool:
        """Whether answering now may need to read catalog.json (so may block on a reload)."""
        if version is not None and version != self._state.version:
            return True
        return time.monotonic() - self._checked >= self.poll_s

    def current(self, *, force: bool = False) -> CatalogState:
        """The state to answer one request from (checks catalog.json at most every poll_s)."""
        now = time.monotonic()
        if force or now - self._checked >= self.poll_s:
            self._maybe_reload(force)
        return self._state

    def pinned(self, version: str | None) -> CatalogState:
        """The current state if it is ``version`` (or no version is asked), else 409."""
        state = self.current()
        if version is None or version == state.version:
            return state
        state = self.current(force=True)
        if version != state.version:
            raise mamamia.CatalogVersionMismatch(
                f"catalog version {version} is no longer served; this server now serves "
                f"{state.version}: run the request again without the version (or the cursor) "
                "to get the current data"
            )
        return state

    def _maybe_reload(self, force: bool) -> None:
        # One thread reloads; the others keep answering from the current state meanwhile,
        # unless they force a check (a pinned version), then they wait for it.
        if not self._reload_lock.acquire(blocking=force):
            return
        try:
            self._checked = time.monotonic()
            try:
                if self.source.changed(self._state):
                    self._state = self.source.load(self.limits)
                    self.last_error = None
            except (mamamia.MamamiaError, OSError, ValueError) as exc:
                # A broken new catalog (or an unreachable store) must not take the served one
                # down; health reports it.
                self.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            self._reload_lock.release()
