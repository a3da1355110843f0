"""The Catalog: one interface over a local catalog folder or a server."""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType, TracebackType
from typing import Any, overload

import pyarrow as pa

from mamamia._backend import Backend, SupportsPrefetch, SupportsRegister, SupportsReopen
from mamamia._case import Case
from mamamia._cohort import Cohort, cohort_sql
from mamamia._crops import CropOptions, CropStream, crop_stream
from mamamia._errors import InvalidRequest, MamamiaError, NotFoundError
from mamamia._volume import ArrayLike
from mamamia.sqlguard import (
    ValueSetWarning,
    check_select,
    strip_statement,
    value_sets,
    value_warnings,
)
from mamamia_schema import PATIENT_ID_PATTERN, CatalogManifest

__all__ = ["Catalog", "Citation", "CitationNotice"]

_CASE_ID = re.compile(PATIENT_ID_PATTERN)


@dataclass(frozen=True)
class CitationNotice:
    """The licence and the works to cite when using the data (``mamamia.Citation``)."""

    licence: str
    citations: tuple[Mapping[str, Any], ...]

    def __str__(self) -> str:
        lines = [f"Licence: {self.licence}"]
        for item in self.citations:
            text = item.get("text") or item.get("title") or str(item)
            doi = item.get("doi")
            lines.append(f"- {text}" + (f" doi:{doi}" if doi and str(doi) not in text else ""))
        return "\n".join(lines)


#: The public name (kept); ``mamamia_schema.Citation`` is one work, this the whole notice.
Citation = CitationNotice


class Catalog:
    """Cohorts, SQL, cases and volumes of one catalog version.

    ``mamamia.open(path)`` gives one over a local folder; ``mamamia.connect(url)`` over a server.
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._manifest_view: Mapping[str, Any] | None = None
        self._value_sets: dict[str, tuple[str, ...]] | None = None

    def __repr__(self) -> str:
        return f"<Catalog {self.version} at {self._backend.location}>"

    def __enter__(self) -> Catalog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._backend.close()

    @property
    def manifest(self) -> Mapping[str, Any]:
        """catalog.json as a read-only mapping of its JSON (``manifest_model`` is the typed
        ``mamamia_schema.CatalogManifest``)."""
        if self._manifest_view is None:
            self._manifest_view = MappingProxyType(self._backend.manifest.model_dump(mode="json"))
        return self._manifest_view

    @property
    def manifest_model(self) -> CatalogManifest:
        """catalog.json, typed and validated when the catalog was opened."""
        return self._backend.manifest

    @property
    def version(self) -> str:
        """The catalog_version: equal for equal content, different after any change."""
        return self._backend.manifest.catalog_version

    def tables(self) -> list[str]:
        return self._backend.table_names()

    def schema(self, table: str) -> pa.Schema:
        return self._backend.table_schema(table)

    @overload
    def citation(self, format: None = None) -> CitationNotice: ...

    @overload
    def citation(self, format: str) -> str: ...

    def citation(self, format: str | None = None) -> CitationNotice | str:
        """The licence and works to cite; as text with ``format="bibtex" | "apa" | "json"``."""
        manifest = self._backend.manifest
        notice = CitationNotice(
            licence=manifest.licence,
            citations=tuple(c.model_dump(mode="json") for c in manifest.citations),
        )
        if format is None:
            return notice
        from mamamia._interop._cite import format_citations

        return format_citations(notice.licence, notice.citations, format)

    def sql(self, query: str, /, **params: Any) -> pa.Table:
        """Run a SELECT (DuckDB dialect, ``$name`` parameters) over the catalog's tables.

        A comparison of a categorical column with a value outside its set (``dataset =
        'Duke'``) warns with :class:`mamamia.ValueSetWarning`, naming the nearest values.
        """
        table = self._backend.sql(query, params)
        self._warn_values(query, params)
        return table

    def _warn_values(self, query: str, params: Mapping[str, Any]) -> None:
        """Warn for each comparison with a value outside its column's set (it matches nothing)."""
        if self._value_sets is None:
            self._value_sets = value_sets(self.schema(t) for t in ("cases", "volumes"))
        try:
            node = check_select(query).node
        except MamamiaError:
            return  # the query ran, so this cannot happen; never fail a good answer over a hint
        for text in value_warnings(node, self._value_sets, params):
            warnings.warn(text, ValueSetWarning, stacklevel=_caller_level())

    def register(self, name: str, data: object, /) -> None:
        """Make ``data`` a table ``name`` that ``sql`` and ``cohort`` can join with ``cases``.

        ``data``: a pandas or polars DataFrame, an Arrow table, or a ``.csv``/``.parquet``
        path (read here, not by the SQL, so the guard stays on). Registering a name again
        replaces the table. Local catalogs only: a server's queries cannot see the user's data.
        """
        if not isinstance(self._backend, SupportsRegister):
            raise InvalidRequest(
                f"register({name!r}): {self._backend.location} is a server; join your own data "
                "locally (mamamia.open on a catalog folder or its cache), or in pandas"
            )
        self._backend.register(name, data)

    def cohort(
        self, where: str | None = None, /, *, sql: str | None = None, **params: Any
    ) -> Cohort:
        """Cases matching a WHERE expression over ``cases``, or a SELECT returning patient_id."""
        return self.run_cohort(
            cohort_sql(where=where, sql=sql),
            params,
            where_clauses=(where,) if where is not None else (),
            source_sql=sql,
        )

    def run_cohort(
        self,
        query: str,
        params: Mapping[str, Any],
        *,
        where_clauses: tuple[str, ...] = (),
        source_sql: str | None = None,
    ) -> Cohort:
        """The cohort of a SELECT over ``cases`` (what ``cohort``, ``Cohort.where`` and
        ``load_cohort`` run); ``where_clauses`` and ``source_sql`` are kept for ``save``."""
        # The query on its own lines: a trailing -- comment cannot swallow the ")".
        table = self._backend.sql(
            f"SELECT * FROM (\n{strip_statement(query)}\n) AS c ORDER BY patient_id", params
        )
        self._warn_values(query, params)
        return Cohort(
            catalog=self,
            query=query,
            params=dict(params),
            catalog_version=self.version,
            table=table,
            where_clauses=where_clauses,
            source_sql=source_sql,
        )

    def case(self, patient_id: str) -> Case:
        """One case by patient id (case-insensitive)."""
        if not isinstance(patient_id, str) or not _CASE_ID.match(patient_id):
            raise InvalidRequest(f"not a valid patient id: {patient_id!r}")
        key = patient_id.upper()
        rows = self._backend.sql("SELECT * FROM cases WHERE patient_id = $id", {"id": key})
        if rows.num_rows == 0:
            raise NotFoundError(f"no case {key} in catalog {self.version}")
        volumes = self._backend.sql(
            "SELECT * FROM volumes WHERE patient_id = $id ORDER BY kind, phase NULLS FIRST",
            {"id": key},
        )
        return Case(self, rows.to_pylist()[0], volumes)

    def open_array(self, zarr_path: str) -> ArrayLike:
        """The array at a catalog-relative ``zarr_path`` (a ``volumes`` row's), opened lazily."""
        return self._backend.open_array(zarr_path)

    @property
    def remote(self) -> bool:
        """Whether volumes come over the network, through a local chunk cache."""
        return isinstance(self._backend, SupportsPrefetch)

    def prefetch(
        self, zarr_paths: Iterable[str], *, on_chunk: Callable[[int], None] | None = None
    ) -> int:
        """Fetch these arrays' chunks into the local cache; chunks fetched (0 when local)."""
        if not isinstance(self._backend, SupportsPrefetch):
            return 0
        return self._backend.prefetch(zarr_paths, on_chunk=on_chunk)

    def reopener(self) -> Callable[[], Catalog] | None:
        """A picklable callable that opens this catalog again in another process, or None."""
        if not isinstance(self._backend, SupportsReopen):
            return None
        return partial(_reopen, self._backend.reopener())

    def crops(
        self,
        cohort: Cohort | Iterable[str],
        /,
        *,
        size: int | Sequence[int] = (64, 64, 64),
        phases: Sequence[int] = (0, 1),
        subtraction: bool = True,
        label: str | None = "expert",
        sampler: str = "tumor",
        pos_ratio: float = 0.5,
        per_case: int = 1,
        normalize: str | None = "zscore",
        spacing: float | Sequence[float] | None = None,
        overlap: int | Sequence[int] | None = None,
        seed: int = 0,
        epoch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        even: bool = False,
        threads: int | None = None,
        prefetch: int | None = None,
        layout: str = "native",
    ) -> CropStream:
        """Stream crops of a cohort: dicts ``{patient_id, image, label, index, spacing}``.

        ``sampler`` is ``"tumor"`` (centred on an expert-mask voxel with probability
        ``pos_ratio``, anywhere otherwise), ``"uniform"`` or ``"grid"`` (tiles with ``overlap``
        for inference). See docs/crops.md for channels, normalization, resampling and sharding;
        ``layout="monai"`` yields MONAI samples instead (docs/interop.md).
        """
        options = CropOptions(
            size=size, phases=phases, subtraction=subtraction, label=label, sampler=sampler,
            pos_ratio=pos_ratio, per_case=per_case, normalize=normalize, spacing=spacing,
            overlap=overlap, seed=seed, epoch=epoch, rank=rank, world_size=world_size, even=even,
            threads=threads, prefetch=prefetch, layout=layout,
        )  # fmt: skip
        return crop_stream(self, cohort, options)


def _caller_level() -> int:
    """The stacklevel of the first frame outside this package: the warning points at user code."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith("mamamia."):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def _reopen(open_backend: Callable[[], Backend]) -> Catalog:
    return Catalog(open_backend())
